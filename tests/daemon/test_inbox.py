"""The inbox: settled drops of real MIDI files are taken; garbage is reported once, left alone."""

import asyncio
import logging
import os
import shutil
import time
from pathlib import Path

from rvaed.daemon.inbox import TAKEN, Batch, Inbox
from rvaed.daemon.policy import FilePolicy

GROOVES = sorted((Path(__file__).resolve().parents[1] / "data" / "groove").rglob("*.mid"))
SETTLE = 0.3


def policy(root: Path, max_file: int = 1 << 20, max_request: int = 64 << 20) -> FilePolicy:
    return FilePolicy((root,), (), max_file, max_request)


def drop(inbox: Path, grooves: list[Path], folder: str = "") -> list[bytes]:
    (inbox / folder).mkdir(parents=True, exist_ok=True)
    for groove in grooves:
        shutil.copy(groove, inbox / folder / groove.name)
    return [groove.read_bytes() for groove in grooves]


def run_until_batches(inbox: Inbox, count: int, during=None, timeout: float = 5.0):
    """Run the inbox's own polling loop until ``count`` batches came (async callback)."""
    batches: list[tuple[float, Batch]] = []

    async def on_batch(batch: Batch) -> None:
        batches.append((time.monotonic(), batch))

    async def main():
        inbox.on_batch = on_batch
        task = asyncio.create_task(inbox.run())
        if during is not None:
            await asyncio.to_thread(during)
        deadline = time.monotonic() + timeout
        while len(batches) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(main())
    return batches


def make_inbox(folder: Path, **limits) -> Inbox:
    return Inbox(folder, SETTLE, policy(folder, **limits), on_batch=lambda batch: None,
                 poll_seconds=0.02)


def test_dropped_files_and_folders_are_taken_once_settled(tmp_path):
    folder = tmp_path / "inbox"
    inbox = make_inbox(folder)
    contents = drop(folder, GROOVES[:3]) + drop(folder, GROOVES[3:6], "my grooves/funk")
    dropped_at = time.monotonic()
    [(when, batch)] = run_until_batches(inbox, 1)
    assert when - dropped_at >= SETTLE
    assert len(batch.files) == 6 and not batch.refused
    assert sorted(p.read_bytes() for p in batch.files) == sorted(contents)
    (taken,) = (folder / TAKEN).iterdir()
    assert all(p.is_relative_to(taken) for p in batch.files)
    assert (taken / "my grooves" / "funk" / GROOVES[4].name).is_file()
    assert os.listdir(folder) == [TAKEN]  # the emptied folder of grooves went too


def test_nothing_is_taken_while_a_file_is_still_being_copied(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    inbox = make_inbox(folder)
    data = GROOVES[-1].read_bytes()
    written = []

    def slow_copy():
        with open(folder / "slow.mid", "wb") as file:
            for start in range(0, len(data), len(data) // 8):
                file.write(data[start:start + len(data) // 8])
                file.flush()
                written.append(time.monotonic())
                time.sleep(0.1)  # a third of the settle time: never settled in between

    [(when, batch)] = run_until_batches(inbox, 1, during=slow_copy)
    assert len(written) >= 8 and when - written[-1] >= SETTLE
    assert [p.read_bytes() for p in batch.files] == [data]


def test_garbage_is_reported_once_and_left_where_it_is(tmp_path):
    folder = tmp_path / "inbox"
    inbox = make_inbox(folder, max_file=10_000)
    small = [g for g in GROOVES if g.stat().st_size <= 10_000][:2]
    big = next(g for g in GROOVES if g.stat().st_size > 10_000)
    drop(folder, small)
    shutil.copy(big, folder / "big.mid")
    (folder / "notes.txt").write_text("my drum notes")
    (folder / "fake.mid").write_bytes(b"RIFF....WAVEfmt ")
    (folder / "empty.midi").write_bytes(b"")
    (folder / "escape.mid").symlink_to("/etc/hostname")
    [(_, batch)] = run_until_batches(inbox, 1)
    assert sorted(p.name for p in batch.files) == sorted(g.name for g in small)
    reasons = {r.path.name: r.reason for r in batch.refused}
    assert set(reasons) == {"big.mid", "notes.txt", "fake.mid", "empty.midi", "escape.mid"}
    assert "more than limits.max_file_bytes (10000)" in reasons["big.mid"]
    assert "not a MIDI file" in reasons["notes.txt"]
    assert "does not start with MThd" in reasons["fake.mid"]
    assert "does not start with MThd" in reasons["empty.midi"]
    assert "not a regular file" in reasons["escape.mid"]
    assert sorted(os.listdir(folder)) == sorted([TAKEN, *reasons])

    (folder / "more.txt").write_text("again")
    [(_, batch)] = run_until_batches(inbox, 1)
    assert batch.files == () and [r.path.name for r in batch.refused] == ["more.txt"]
    assert inbox.poll() is None


def test_a_request_over_the_limit_takes_what_fits(tmp_path):
    folder = tmp_path / "inbox"
    sizes = sorted(g.stat().st_size for g in GROOVES[:4])
    inbox = make_inbox(folder, max_request=sum(sizes) - 1)
    drop(folder, GROOVES[:4])
    [(_, batch)] = run_until_batches(inbox, 1)
    assert len(batch.files) == 3 and len(batch.refused) == 1
    assert "exceed limits.max_request_bytes" in batch.refused[0].reason
    assert sum(p.stat().st_size for p in batch.files) <= sum(sizes) - 1


def test_a_plain_function_callback_and_a_missing_folder_work(tmp_path):
    folder = tmp_path / "not" / "yet"
    received = []
    inbox = Inbox(folder, SETTLE, policy(folder), received.append, poll_seconds=0.02)

    async def main():
        task = asyncio.create_task(inbox.run())
        await asyncio.sleep(0.1)
        assert folder.is_dir()
        drop(folder, GROOVES[:1])
        while not received:
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert [p.name for p in received[0].files] == [GROOVES[0].name]


def test_an_unusable_inbox_is_a_warning_not_a_crash(tmp_path, caplog):
    folder = tmp_path / "inbox"
    folder.write_text("a file where the folder should be")
    assert make_inbox(folder).poll() is None
    assert "cannot read" in caplog.text


def test_a_failing_callback_is_logged_and_the_inbox_keeps_watching(tmp_path, caplog):
    folder = tmp_path / "inbox"
    calls = []

    def on_batch(batch: Batch) -> None:
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("training could not start")

    inbox = Inbox(folder, SETTLE, policy(folder), on_batch, poll_seconds=0.02)

    async def main():
        task = asyncio.create_task(inbox.run())
        drop(folder, GROOVES[:1])
        while not calls:
            await asyncio.sleep(0.02)
        drop(folder, GROOVES[1:2])
        while len(calls) < 2:
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 5))
    assert "training could not start" in caplog.text
    assert [p.name for p in calls[1].files] == [GROOVES[1].name]


def test_an_updated_inbox_watches_the_new_folder_from_the_next_poll(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    inbox = make_inbox(first)
    inbox.policy = policy(tmp_path)
    inbox.update(second, 0.1)
    drop(first, GROOVES[:1])
    drop(second, GROOVES[1:3])
    (_, batch), = run_until_batches(inbox, 1)
    assert inbox.folder == second and inbox.settle_seconds == 0.1
    assert sorted(path.name for path in batch.files) == sorted(g.name for g in GROOVES[1:3])
    assert all(path.is_relative_to(second / TAKEN) for path in batch.files)
    assert (first / GROOVES[0].name).exists()


def nest(folder: Path, depth: int) -> None:
    """Folders ``depth`` deep below ``folder`` (made through directory fds: the path is longer
    than the kernel's PATH_MAX)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("deep.mid", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as file:
            file.write(GROOVES[0].read_bytes())
    finally:
        os.close(fd)


def unnest(folder: Path) -> None:
    """Remove what `nest` made, top down (shutil.rmtree recurses, and fails on it too)."""
    top, spare = folder / "d", folder / "spare"
    while top.exists():
        for name in os.listdir(top):
            if name == "d":
                os.rename(top / name, spare)
            else:
                os.unlink(top / name)
        os.rmdir(top)
        if spare.exists():
            os.rename(spare, top)


def test_a_folder_nested_thousands_deep_is_reported_and_the_rest_is_taken(tmp_path, caplog):
    folder = tmp_path / "inbox"
    folder.mkdir()
    nest(folder, 2100)  # os.walk on Python 3.11: RecursionError, the inbox task ended
    drop(folder, GROOVES[:1], "shallow/er")
    inbox = make_inbox(folder)
    try:
        (_, batch), = run_until_batches(inbox, 1)
    finally:
        unnest(folder)
    assert [p.name for p in batch.files] == [GROOVES[0].name]
    deep = [r for r in caplog.records if "nested deeper than" in r.getMessage()]
    assert len(deep) == 1, caplog.text  # once, not once per poll
    assert deep[0].getMessage().startswith("inbox: d/d/d/")


def test_control_characters_in_names_cannot_forge_log_lines(tmp_path, caplog):
    folder = tmp_path / "inbox"
    folder.mkdir()
    forged = "x.txt\n2026-01-01 CRITICAL rvaed: fake\r\x1b[2J"
    (folder / forged).write_text("not MIDI")
    (folder / os.fsdecode(b"bad-\xff.mid")).write_bytes(b"MTrk")  # a name not in UTF-8
    os.mkfifo(folder / "fifo.mid")  # opening it would block the poll
    batches = run_until_batches(make_inbox(folder), 1)
    refused = {r.path.name: r.reason for _, b in batches for r in b.refused}
    assert refused["fifo.mid"] == "not a regular file" and forged in refused
    lines = [r.getMessage() for r in caplog.records if r.name == "rvaed.daemon.inbox"]
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert any("x.txt\\x0a2026-01-01 CRITICAL" in line for line in lines), lines
    assert any("bad-\\xff.mid" in line for line in lines), lines
    for line in lines:
        line.encode()  # what a log handler writes: no surrogates left


def test_while_training_cannot_start_the_files_stay_and_are_taken_later(tmp_path, caplog):
    folder = tmp_path / "inbox"
    reason = ["a training is running"]
    inbox = make_inbox(folder)
    inbox.blocked = lambda: reason[0]

    def dropped_during_a_training():
        drop(folder, GROOVES[:2])
        time.sleep(SETTLE * 4)  # settled, but blocked: nothing may move
        assert sorted(p.name for p in folder.iterdir()) == sorted(g.name for g in GROOVES[:2])
        reason[0] = None  # the training ended

    (_, batch), = run_until_batches(inbox, 1, during=dropped_during_a_training)
    assert sorted(p.name for p in batch.files) == sorted(g.name for g in GROOVES[:2])
    waits = [r for r in caplog.records if "until training can start" in r.getMessage()]
    assert len(waits) == 1 and "a training is running" in waits[0].getMessage()


def test_the_trainer_says_why_the_inbox_must_wait(tmp_path, monkeypatch):
    from rvaed.core.kit import DEFAULT_KIT
    from rvaed.daemon import supervisor
    from rvaed.daemon.config import TrainingConfig
    from rvaed.model.library import ModelLibrary

    trainer = supervisor.Trainer(ModelLibrary(tmp_path), TrainingConfig(), DEFAULT_KIT,
                                 on_model=print, on_progress=print)
    assert trainer.blocked() is None  # torch is installed here
    # torch cannot be uninstalled for one test: its lookup is replaced (a stand-in)
    monkeypatch.setattr(supervisor.importlib.util, "find_spec", lambda name: None)
    assert "torch is not installed" in trainer.blocked()


def test_files_refused_by_the_callback_are_put_back_and_taken_again(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    folder = tmp_path / "inbox"
    inbox = make_inbox(folder)
    batches: list[Batch] = []

    def on_batch(batch: Batch) -> bool:
        batches.append(batch)
        return len(batches) > 1  # the first: a training began meanwhile, it cannot start

    async def main():
        inbox.on_batch = on_batch
        task = asyncio.create_task(inbox.run())
        drop(folder, GROOVES[:2], "set")
        while len(batches) < 2:
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 10))
    first, second = batches
    assert sorted(p.name for p in first.files) == sorted(p.name for p in second.files)
    assert all(p.exists() for p in second.files) and not any(p.exists() for p in first.files)
    assert "2 file(s) put back" in caplog.text
    assert not list(folder.glob("set/*"))  # the second batch took them for good

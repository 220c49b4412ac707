"""State persistence: atomic saves, debounced bursts, a corrupt file set aside, never fatal."""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from rvaed.core.atomic import write_atomic
from rvaed.core.state import PerformanceState
from rvaed.daemon.persist import Saved, StateStore

STATE = {"x": 0.25, "y": 0.75, "presets": [[0.1, 0.2]] * 8, "model": "funk-20250301-201500"}


def test_save_then_load_round_trips_and_leaves_no_temp_files(tmp_path):
    store = StateStore(tmp_path / "state" / "state.json")
    assert store.load() is None
    store.save(STATE)
    assert StateStore(store.path).load() == STATE
    assert json.loads(store.path.read_text()) == STATE
    assert os.listdir(store.path.parent) == ["state.json"]


def test_corrupt_state_is_set_aside_with_a_warning(tmp_path, caplog):
    path = tmp_path / "state.json"
    for damage in (b'{"x": 0.2, "y"', b"[1, 2]", b"\xff\xfe garbage", b""):
        path.write_bytes(damage)
        with caplog.at_level(logging.WARNING):
            assert StateStore(path).load() is None
        assert not path.exists()
        aside = sorted(tmp_path.glob("state.json.corrupt-*"))
        assert aside and aside[-1].read_bytes() == damage
        assert "set aside" in caplog.text
        caplog.clear()
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 4  # none overwritten
    StateStore(path).save(STATE)
    assert StateStore(path).load() == STATE


def test_a_burst_of_changes_is_written_once_with_the_newest_data(tmp_path):
    store = StateStore(tmp_path / "state.json", debounce=0.2)

    async def burst():
        for i in range(100):
            store.save_soon({**STATE, "x": i / 100})
        await asyncio.sleep(0.05)
        assert not store.path.exists()  # still waiting for the burst to end
        await asyncio.sleep(0.4)
        written = os.stat(store.path).st_ino
        await asyncio.sleep(0.3)
        return written

    inode = asyncio.run(burst())
    assert os.stat(store.path).st_ino == inode  # every save replaces the inode: one save
    assert store.load()["x"] == 0.99


def test_flush_writes_what_is_pending_at_once(tmp_path):
    store = StateStore(tmp_path / "state.json", debounce=60)

    async def change_and_exit():
        store.save_soon(STATE)
        store.save_soon({**STATE, "x": 0.5})
        await store.flush()
        return store.load()

    assert asyncio.run(change_and_exit())["x"] == 0.5


def test_a_failing_save_is_logged_and_the_loop_carries_on(tmp_path, caplog):
    (tmp_path / "file").write_text("in the way")
    store = StateStore(tmp_path / "file" / "state.json", debounce=0.01)

    async def change():
        store.save_soon(STATE)
        await asyncio.sleep(0.1)
        await store.flush()
        return "still running"

    assert asyncio.run(change()) == "still running"
    assert "cannot save state" in caplog.text


def test_readers_never_see_a_partly_written_file(tmp_path):
    path = tmp_path / "state.json"
    big = {"pad": "x" * 200_000}
    write_atomic(path, json.dumps({**big, "n": 0}).encode())
    seen, errors, stop = [], [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen.append(json.loads(path.read_bytes())["n"])
            except ValueError as exc:
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(1, 60):
        write_atomic(path, json.dumps({**big, "n": n}).encode())
    stop.set()
    reader.join()
    assert not errors
    assert len(seen) > 10 and seen == sorted(seen) and seen[-1] <= 59


SAVER = """
import sys
from rvaed.daemon.persist import StateStore
store = StateStore(sys.argv[1])
n = 0
while True:
    n += 1
    store.save({"n": n, "pad": "x" * 500_000})
    print(n, flush=True)
"""


def test_kill_9_in_the_middle_of_saving_leaves_a_whole_file(tmp_path):
    path = tmp_path / "state.json"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE)
    for _ in range(5):
        saver.stdout.readline()
    time.sleep(0.05)
    saver.send_signal(signal.SIGKILL)
    saver.wait()
    state = StateStore(path).load()
    assert state is not None and state["n"] >= 5 and len(state["pad"]) == 500_000
    assert os.listdir(tmp_path) == ["state.json"]  # an interrupted temp file is cleaned up


def test_conditions_come_back_from_the_state_file_and_a_wrong_one_is_set_aside(tmp_path):
    state = PerformanceState()
    state.condition_snare = "1:4"
    state.steps = [(2, 5, "fill"), (0, 0, "not pre"), (1, 9, "12.5%")]
    store = StateStore(tmp_path / "state.json")
    store.save({"state": state.to_dict()})
    back = Saved.load(store).state(9)
    assert (back.condition_snare, back.steps) == (state.condition_snare, state.steps)
    store.save({"state": {"steps": [[0, 0, "1:2"], [3, 40, "often"]], "x": 0.25}})
    saved = Saved.load(store)
    wrong = saved.state(9)
    assert (wrong.steps, wrong.x) == ((), 0.25) and saved.aside  # the rest of the file kept
    assert [p.name for p in tmp_path.iterdir() if p.name != "state.json"]  # set aside

"""The README is true: every command line in its code blocks is run by a test, here or in the
test named for its section, or stands in NOT_RUN with the reason no test can run it here
(the bookworm install test lists, beside its own, what a chroot cannot run).

Commands are taken from the README itself (tests/support/readme.py), so a command added to it
without a test fails here, naming it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jackmidi import Receiver
from readme import README, commands

from rvaed.benchmarks.harness import jack_ports

ELSEWHERE = {  # command -> the test that runs it as written
    "python3 -m venv ~/.local/rvaed && ~/.local/rvaed/bin/pip install '.[train]' \\\n"
    "--extra-index-url https://download.pytorch.org/whl/cpu": "tests/install/test_bookworm.py",
    "mkdir -p ~/.local/bin && ln -sf ~/.local/rvaed/bin/rvaed ~/.local/bin/rvaed":
        "tests/install/test_bookworm.py",
    "python3 -m venv ~/.local/rvaed && ~/.local/rvaed/bin/pip install .":
        "tests/install/test_bookworm.py",
}
SECTIONS_ELSEWHERE = {"Install on Raspberry Pi OS (64-bit)": "tests/install/test_bookworm.py"}
NOT_RUN = {  # command -> why no test runs it (the one visible list)
    "bash tests/run": "the whole test suite, which contains this test (CI runs it)",
    "rvaed train path/to/groove-midi --gmd-split train --kit gmd --epochs 40 --threads 2 \\\n"
    "--name starter -o rvaed/models/starter": "rebuilds the shipped starter: 28 minutes on two "
    "idle cores and the full dataset (tests/commands/test_train_cli.py runs --gmd-split on the "
    "test data)",
    "systemctl --user daemon-reload": "needs a login session's systemd (a desktop's user "
                                      "manager); tests run without one",
    "systemctl --user enable --now rvaed": "needs a login session's systemd",
    "journalctl --user -u rvaed -f": "follows a login session's journal until stopped",
}
RUN_HERE = {"rvaed run -v", "mkdir -p ~/.config/systemd/user",
            "cp systemd/rvaed-user.service ~/.config/systemd/user/rvaed.service"}
REPO = README.parent
NOTE_ON = 0x90


def plain(text: str) -> str:
    """A command without its trailing comment."""
    return text.split("  #")[0].strip()


def shell(command: str, home: Path, **kwargs) -> subprocess.Popen:
    """``command`` as a reader runs it: bash in the rvaed folder, rvaed on the PATH."""
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"),
           "XDG_STATE_HOME": str(home / ".local/state"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.Popen(["bash", "-c", command], cwd=REPO, env=env, **kwargs)


def test_every_command_is_run_by_a_test_or_listed_with_a_reason():
    uncovered = [f"{c.section}: {c.text}" for c in commands()
                 if plain(c.text) not in RUN_HERE | set(ELSEWHERE) | set(NOT_RUN)
                 and c.section not in SECTIONS_ELSEWHERE]
    assert not uncovered, "README commands no test runs:\n" + "\n".join(uncovered)
    listed = RUN_HERE | set(ELSEWHERE) | set(NOT_RUN)
    stale = listed - {plain(c.text) for c in commands()}
    assert not stale, f"listed but no longer in the README: {stale}"


def test_the_install_test_runs_its_sections():
    source = (REPO / "tests/install/test_bookworm.py").read_text()
    for section in SECTIONS_ELSEWHERE:
        assert f'"{section}"' in source
    assert 'steps("Set up")' in source


def test_rvaed_run_v_plays_and_stops_cleanly_on_ctrl_c(tmp_path, jack_server, link_network):
    receiver = Receiver(f"readme-{os.getpid()}")
    daemon = shell("rvaed run -v", tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   text=True)
    try:
        deadline = time.monotonic() + 20
        while "rvaed:rvaed" not in jack_ports():
            assert daemon.poll() is None and time.monotonic() < deadline, daemon.stdout.read()
            time.sleep(0.1)
        receiver.connect_from("rvaed:rvaed")
        assert receiver.wait_for(lambda m: any(s & 0xF0 == NOTE_ON for _, (s, *_) in m), 15)
        daemon.send_signal(signal.SIGINT)
        log = daemon.communicate(timeout=20)[0]
    finally:
        receiver.close()
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    assert "DEBUG rvaed: model: " in log and "INFO rvaed: playing starter" in log
    assert "rvaed: stopped" in log


def test_the_user_service_is_copied_where_systemd_looks(tmp_path):
    for command in ("mkdir -p ~/.config/systemd/user",
                    "cp systemd/rvaed-user.service ~/.config/systemd/user/rvaed.service"):
        assert shell(command, tmp_path).wait(30) == 0
    unit = (tmp_path / ".config/systemd/user/rvaed.service").read_text()
    assert "ExecStart=%h/.local/bin/rvaed run" in unit  # where the set-up puts the command


"""End to end: SIGHUP to the real `rvaed run` process applies every reloadable section of its
config file while the music plays (mappings, osc.allow, training, inbox, outputs, log level),
names the keys that need a restart, and a broken file leaves the running config in place.
OSC goes over real UDP on 127.0.0.1; the MIDI out is watched through a private JACK server."""

import json
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml
from performer import subscribe
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg
from rig import DaemonProcess, free_udp_port, wait_until
from test_daemon import (
    GROOVE,
    NOTE_ON,
    assert_never_stopped,
    assert_no_hanging_notes,
    listen,
)

from rvaed.engine.clock import now

GM_CHANNEL, DIGITAKT_CHANNELS = 9, set(range(8))  # status channels (0-based)


class Client:
    """An OSC client on its own UDP socket, subscribed (the handshake) once the daemon runs,
    so that feedback and replies come to it."""

    def __init__(self, port: int) -> None:
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.subscribed = False

    def send(self, address: str, *args) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, self.server)

    def subscribe(self) -> None:
        if not self.subscribed:
            subscribe(self.sock, self.server)
            self.subscribed = True

    def ask(self, address: str, *args) -> list[tuple]:
        """Replies to a request (they go to the subscription): every one within a second."""
        self.subscribe()
        self.send(address, *args)
        return self.replies(address)

    def replies(self, address: str, timeout: float = 1.0) -> list[tuple]:
        """Arguments of every reply to ``address`` that came within ``timeout``."""
        found, deadline = [], time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                message = OscMessage(self.sock.recv(65536))
            except TimeoutError:
                break
            if message.address == address:
                found.append(tuple(message.params))
        return found

    def x(self) -> float:
        """The daemon's x: the last /rvaed/xy of its feedback after what was sent before
        settled (a feedback interval) and /rvaed/state sent it all again."""
        self.subscribe()
        time.sleep(0.2)
        self.replies("/rvaed/xy", 0.1)
        self.send("/rvaed/state")
        return self.replies("/rvaed/xy", 0.5)[-1][0]

    def close(self) -> None:
        self.sock.close()


def secret(daemon: DaemonProcess) -> str:
    return (daemon.dirs["state"] / "secret").read_text().strip()


def mapping(root: Path, name: str) -> str:
    path = root / f"{name}.yaml"
    path.write_text(f"name: {name}\nbindings:\n  - {{osc: /{name}, target: x}}\n")
    return str(path)


@pytest.fixture
def daemon(tmp_path, jack_server, link_network):
    process = DaemonProcess(tmp_path, free_udp_port(), verbose=False,
                            mappings=[mapping(tmp_path, "a")], logging={"level": "warning"})
    yield process
    process.kill()


@pytest.fixture
def client(daemon):
    osc = Client(daemon.port)
    yield osc
    osc.close()


def rewrite(daemon: DaemonProcess, **changes) -> None:
    config = yaml.safe_load(daemon.config.read_text())
    for section, value in changes.items():
        config[section] = {**config[section], **value} if isinstance(value, dict) else value
    daemon.config.write_text(yaml.safe_dump(config))


def reload(daemon: DaemonProcess, needle: str) -> str:
    """SIGHUP, then the first new log line holding ``needle``."""
    seen = len(daemon.text())
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: needle in daemon.text()[seen:], 10, daemon)
    return next(line for line in daemon.text()[seen:].splitlines() if needle in line)


def channels_between(midi_dump, start: float, end: float) -> set[int]:
    return {m[0] & 0x0F for t, m in midi_dump.kinds(NOTE_ON) if start <= t < end}


def test_sighup_applies_every_section_and_the_music_plays_on(daemon, client,
                                                             receiver):
    first_note = listen(daemon, receiver) + daemon.started
    client.send("/rvaed/threshold", 0.2)
    client.send("/a", 0.2)
    assert client.x() == pytest.approx(0.2)
    assert client.ask("/rvaed/models", secret(daemon)), "loopback is allowed before the reload"
    assert "reloaded" not in daemon.text() and "now playing model" not in daemon.text()
    inbox = daemon.root / "inbox-2"
    rewrite(daemon, mappings=[mapping(daemon.root, "b")], osc={"allow": ["::1"],
            "port": free_udp_port()}, training={"epochs": 3},
            dirs={"inbox": str(inbox)}, midi={"outputs": [{"drum_machine": "digitakt"}]},
            logging={"level": "info"})
    before = now()

    line = reload(daemon, "reloaded")
    for change in ("mappings", "a.yaml -> ", "b.yaml", "osc.allow 127.0.0.0/8,::1 -> ::1",
                   "training.epochs 25 -> 3", f"dirs.inbox {daemon.dirs['inbox']} -> {inbox}",
                   "midi.outputs", "logging.level warning -> info"):
        assert change in line, line
    assert "osc.port" not in line
    restart = [ln for ln in daemon.text().splitlines() if "needs a restart" in ln]
    assert len(restart) == 1 and "osc.port" in restart[0], restart

    assert client.ask("/rvaed/models", secret(daemon)) == []
    daemon.wait_log("/rvaed/models: refused from 127.0.0.1 (not in osc.allow)", 5)
    client.send("/b", 0.8)
    assert client.x() == pytest.approx(0.8), "the new map moves x (the old OSC port still serves)"
    client.send("/a", 0.1)
    assert client.x() == pytest.approx(0.8), "the old map no longer does"

    time.sleep(2.5)
    assert channels_between(receiver, first_note, before) == {GM_CHANNEL}
    assert channels_between(receiver, before + 1, now()) <= DIGITAKT_CHANNELS
    assert channels_between(receiver, before + 1, now()), "the new drum machine plays"
    assert_never_stopped(receiver, first_note, max_gap=2.0)

    inbox.mkdir(exist_ok=True)
    for file in sorted(GROOVE.rglob("*.mid"))[:3]:
        shutil.copy(file, inbox / file.name)
    daemon.wait_log("now playing model", 120)
    assert re.search(r"training: epoch [123]/3 loss", daemon.text()), daemon.text()[-2000:]
    (model,) = [p for p in daemon.dirs["models"].iterdir() if p.is_dir() and p.name[0] != "."]
    assert json.loads((model / "manifest.json").read_text())["training"]["options"]["epochs"] == 3

    assert daemon.stop() == 0
    assert_no_hanging_notes(receiver, daemon)


def test_a_broken_file_on_sighup_keeps_the_running_config(daemon, client,
                                                          receiver):
    listen(daemon, receiver)
    good = daemon.config.read_text()
    daemon.config.write_text(good + "training: {epochs: many}\n")
    line = reload(daemon, "reload refused")
    assert f"{daemon.config}:" in line and "training.epochs" in line, line
    assert len(line.split(": ", 1)[1].splitlines()) == 1
    client.send("/a", 0.3)
    assert client.x() == pytest.approx(0.3), "the running mappings still route"
    assert client.ask("/rvaed/models", secret(daemon)), "the running osc.allow still holds"

    daemon.config.write_text(good.replace("epochs: 25", "epochs: 4").replace("warning", "info"))
    assert "training.epochs 25 -> 4" in reload(daemon, "reloaded"), "the file is read again"
    assert daemon.stop() == 0


def test_link_switches_off_and_on_by_sighup_and_osc_while_the_music_plays(
        daemon, client, receiver):
    """Alone, switching Link moves no beat: the one Link object keeps its timeline, so the
    notes never stop (a Link session found on the way would be joined: that is a jump)."""
    first_note = listen(daemon, receiver) + daemon.started
    rewrite(daemon, link={"enabled": False}, logging={"level": "info"})
    assert "link.enabled" in reload(daemon, "reloaded")
    client.send("/rvaed/link", 1)
    time.sleep(1.5)  # longer than the join wait: the namespace holds no peer
    client.send("/rvaed/link", 0)
    time.sleep(1.0)
    assert_never_stopped(receiver, first_note, max_gap=2.0)
    assert "needs a restart" not in daemon.text()

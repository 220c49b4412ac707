"""End to end: the real `rvaed run` obeys commands that touch files only with its secret,
whatever the UDP source says, and `rvaed train --daemon` reaches it through its local socket.
A "LAN" sender is forged for real: inside the test's private network namespace, loopback also
holds 192.168.77.1/24, the daemon allows 192.168.77.0/24 (as the README suggests for a phone's
network), and a socket with IP_TRANSPARENT sends from 192.168.77.50, an address of no
interface here, as an attacker on the venue's Wi-Fi would."""

import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
from checks import missing, only_loopback
from pythonosc.osc_message_builder import build_msg
from rig import DaemonProcess, free_udp_port, wait_until
from test_daemon import GROOVE

LAN, FORGED = "192.168.77.1", "192.168.77.50"
IP_TRANSPARENT = 19  # linux/in.h


@pytest.fixture
def lan(link_network):
    """192.168.77.1/24 on loopback, only ever inside the test's own network namespace."""
    if not only_loopback():
        missing("needs a loopback-only network namespace")
    subprocess.run(["ip", "addr", "add", f"{LAN}/24", "dev", "lo"], check=True)
    yield
    subprocess.run(["ip", "addr", "del", f"{LAN}/24", "dev", "lo"], check=False)


@pytest.fixture
def daemon(tmp_path, jack_server, lan):
    port = free_udp_port()
    process = DaemonProcess(tmp_path, port, osc={"bind": "0.0.0.0", "port": port,
                                                 "allow": ["127.0.0.0/8", "192.168.77.0/24"]})
    yield process
    process.kill()


def forged_sender() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        sock.bind((FORGED, 0))
    except PermissionError:
        sock.close()
        missing("forging a source address needs CAP_NET_ADMIN (root in the namespace)")
    return sock


def test_file_commands_need_the_secret_not_an_allowed_source(daemon):
    daemon.start()
    daemon.wait_log("need the secret (in ", 10)
    secret = (daemon.dirs["state"] / "secret").read_text().strip()
    assert secret and secret not in daemon.text(), "the secret itself is never logged"
    assert (daemon.dirs["state"] / "secret").stat().st_mode & 0o777 == 0o600
    captures = daemon.dirs["captures"]
    with forged_sender() as sock:
        target = (LAN, daemon.port)
        sock.sendto(build_msg("/rvaed/capture", []).dgram, target)
        sock.sendto(build_msg("/rvaed/capture", ["not-the-secret"]).dgram, target)
        daemon.wait_log(f"/rvaed/capture: refused from {FORGED}: expected the secret", 10)
        assert not list(captures.glob("*.mid")), "captured on a forged, secretless order"
        sock.sendto(build_msg("/rvaed/threshold", 0.3).dgram, target)  # open to everyone
        sock.sendto(build_msg("/rvaed/capture", [secret]).dgram, target)
        wait_until(lambda: len(list(captures.glob("*.mid"))) == 1, 10, daemon)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as local:  # this machine, no secret
        local.sendto(build_msg("/rvaed/capture", []).dgram, ("127.0.0.1", daemon.port))
        local.sendto(build_msg("/rvaed/capture", [secret]).dgram, ("127.0.0.1", daemon.port))
        wait_until(lambda: len(list(captures.glob("*.mid"))) >= 2, 10, daemon)
    time.sleep(0.5)
    assert len(list(captures.glob("*.mid"))) == 2, "one capture per command with the secret"
    assert daemon.stop() == 0


@pytest.fixture
def trainer(tmp_path, jack_server, link_network):
    process = DaemonProcess(tmp_path, free_udp_port(),
                            training={"settle_seconds": 0.5, "epochs": 3})
    yield process
    process.kill()


def test_rvaed_train_daemon_trains_through_the_local_socket(trainer):
    trainer.start()
    trainer.wait_log("local socket: ", 10)
    sock = trainer.dirs["state"] / "rvaed.sock"
    assert sock.is_socket() and sock.stat().st_mode & 0o777 == 0o600
    files = []
    for source in sorted(GROOVE.rglob("*.mid"))[:2]:  # a data directory, not the inbox
        files.append(trainer.dirs["captures"] / source.name)
        shutil.copy(source, files[-1])
    done = subprocess.run([sys.executable, "-m", "rvaed.cli", "train", "--daemon", *map(str, files),
                           "--config", str(trainer.config)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "the daemon is training 2 file(s)" in done.stderr
    assert re.search(r"epoch 3/3", done.stderr), done.stderr
    assert re.match(r"model \S+ trained", done.stdout), done.stdout
    trainer.wait_log("now playing model", 30)
    assert trainer.stop() == 0
    assert not sock.exists(), "the socket goes with the daemon"

"""File-touching commands: only allowed senders, only paths inside the data directories."""

import dataclasses
import socket

import pytest

from rvaed.core.errors import RvaedError
from rvaed.daemon.config import DaemonConfig
from rvaed.daemon.policy import FilePolicy, parse_allowlist, sender_allowed

LOOPBACK = parse_allowlist(DaemonConfig().osc.allow)


@pytest.fixture
def dirs(tmp_path):
    """Two data directories, and a secret outside them."""
    captures, inbox, outside = tmp_path / "captures", tmp_path / "inbox", tmp_path / "outside"
    for folder in (captures, inbox, outside):
        folder.mkdir()
    (captures / "groove.mid").write_bytes(b"MThd" + bytes(100))
    (inbox / "take.mid").write_bytes(b"MThd" + bytes(10))
    (outside / "secret.txt").write_text("not for OSC")
    policy = FilePolicy((captures, inbox), LOOPBACK, max_file_bytes=1000,
                        max_request_bytes=150)
    return policy, captures, inbox, outside


def test_paths_inside_the_data_directories_resolve(dirs):
    policy, captures, inbox, _ = dirs
    assert policy.resolve("groove.mid", captures) == captures / "groove.mid"
    assert policy.resolve(str(inbox / "take.mid"), captures) == inbox / "take.mid"
    assert policy.resolve("new/one.mid", captures, must_exist=False) == captures / "new/one.mid"
    (captures / "to-inbox").symlink_to(inbox)  # a symlink to another data directory is fine
    assert policy.resolve("to-inbox/take.mid", captures) == inbox / "take.mid"


@pytest.mark.parametrize(("user_path", "message"), [
    ("../outside/secret.txt", "'..' is not allowed"),
    ("sub/../groove.mid", "'..' is not allowed"),
    ("..", "'..' is not allowed"),
    ("/etc/passwd", "outside the data directories"),
    ("OUTSIDE/secret.txt", "outside the data directories"),
    ("", "expected a file name"),
    ("groove.mid\0.txt", "expected a file name"),
    ("missing.mid", "no such file"),
])
def test_paths_that_escape_or_do_not_exist_are_refused(dirs, user_path, message):
    policy, captures, _, outside = dirs
    user_path = user_path.replace("OUTSIDE", str(outside))
    with pytest.raises(RvaedError, match=message):
        policy.resolve(user_path, captures)


def test_symlinks_out_of_the_data_directories_are_refused(dirs):
    policy, captures, _, outside = dirs
    (captures / "innocent.mid").symlink_to(outside / "secret.txt")
    (captures / "door").symlink_to(outside)
    for user_path, must_exist in (("innocent.mid", True), ("door/secret.txt", True),
                                  ("door/new.mid", False)):
        with pytest.raises(RvaedError, match="outside the data directories"):
            policy.resolve(user_path, captures, must_exist=must_exist)


def test_size_limits_per_file_and_per_request(dirs):
    policy, captures, inbox, _ = dirs
    (captures / "huge.mid").write_bytes(bytes(1001))
    with pytest.raises(RvaedError, match=r"huge\.mid: 1001 bytes, more than limits\.max_file"):
        policy.resolve("huge.mid", captures)
    policy.check_request([captures / "groove.mid", inbox / "take.mid"])  # 104 + 14 bytes
    with pytest.raises(RvaedError, match=r"request of 208 bytes, more than limits\.max_req"):
        policy.check_request([captures / "groove.mid"] * 2)


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True),
    ("127.4.5.6", True),
    ("::1", True),
    ("::ffff:127.0.0.1", True),  # an IPv4 client as a dual-stack socket reports it
    ("192.168.1.20", False),
    ("::ffff:192.168.1.20", False),
    ("fe80::1%eth0", False),
    ("2001:db8::1", False),
    ("localhost", False),
    ("", False),
    ("127.0.0.1; rm -rf /", False),
])
def test_default_allowlist_is_this_machine_only(host, allowed):
    assert sender_allowed(host, LOOPBACK) is allowed


def test_allowlist_with_a_home_network_and_an_ipv6_link():
    allow = parse_allowlist(["127.0.0.1", "192.168.1.0/24", "fe80::/10"])
    assert sender_allowed("192.168.1.20", allow)
    assert not sender_allowed("192.168.2.20", allow)
    assert sender_allowed("fe80::1%wlan0", allow)
    assert not sender_allowed("::1", allow)


def test_real_udp_senders_on_loopback_are_allowed():
    """The addresses a UDP server really sees (IPv4 and IPv6 loopback) pass the check."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        server = socket.socket(family, socket.SOCK_DGRAM)
        try:
            server.bind((host, 0))
        except OSError:
            server.close()
            assert family == socket.AF_INET6, "no IPv4 loopback"
            continue  # a machine without IPv6 loopback
        with server, socket.socket(family, socket.SOCK_DGRAM) as client:
            client.sendto(b"/rvaed/train\0\0\0\0", server.getsockname())
            server.settimeout(2)
            _, sender = server.recvfrom(100)
            assert sender_allowed(sender[0], LOOPBACK), sender


def test_policy_from_config_covers_every_data_directory():
    config = DaemonConfig()
    policy = FilePolicy.from_config(config)
    assert policy.roots == config.dirs.all()
    assert policy.sender_allowed("::1") and not policy.sender_allowed("10.0.0.1")
    assert policy.max_file_bytes == config.limits.max_file_bytes


def test_an_updated_policy_guards_with_the_new_allowlist_at_once(tmp_path):
    policy = FilePolicy.from_config(DaemonConfig())
    allowed = policy.sender_allowed  # what the OSC server holds for the routes that touch files
    assert allowed("127.0.0.1")
    config = DaemonConfig(osc=dataclasses.replace(DaemonConfig().osc, allow=("::1",)))
    policy.update(config)
    assert not allowed("127.0.0.1") and allowed("::1")

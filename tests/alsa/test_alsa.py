"""The real daemon on a real ALSA sequencer (run inside the ALSA guest: tests/alsa/guest.py).

snd-seq-dummy's "Midi Through" port and snd-virmidi's devices are kernel sequencer clients, as
a USB drum machine's port is; rvaed plays to them through python-rtmidi's ALSA API, and the
receivers are separate programs (aseqdump; the virmidi's raw-MIDI side, where the cable's far
end would be). Unbinding snd_virmidi's platform device removes its card as unplugging a USB
device does; binding it again is the replug. `aconnect -d` removes a subscription from
outside, as a patchbay does. The guest's time is emulated (TCG) and means nothing: the tests
wait for counts of notes at the receiver and check order and pairing, never times.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alsamidi import (
    Dump,
    Message,
    RawMidiDump,
    SeqDump,
    before_first_note,
    clean_slate_missing,
    counted,
    hanging,
    is_note_on,
    unpaired,
)
from rig import DaemonProcess, free_udp_port, wait_until

from rvaed.core.drummachine import load_drum_machine
from rvaed.core.kit import load_kit
from rvaed.engine import alsaseq

THROUGH = (14, 0)  # snd-seq-dummy's port: it echoes everything to its subscribers
VIRMIDI = "VirMIDI 0-0"  # snd-virmidi's first device on card 0 (the guest has no other card)
PLATFORM = Path("/sys/bus/platform/drivers/snd_virmidi")
START_S = 600  # the daemon's start under TCG (emulated, on a loaded host) takes minutes
STOP_S = 300
NOTES = 24  # note-ons to wait for in each stretch: several bars, every voice of the pattern


@pytest.fixture(scope="module", autouse=True)
def sequencer():
    """The kernel's sequencer parts (inside.sh loads them; a test that unbinds restores)."""
    for module in ("snd-seq-dummy", "snd-virmidi"):
        subprocess.run(["modprobe", module], check=True)
    assert alsaseq.read_ports() is not None, "no /proc/asound/seq/clients"


@pytest.fixture
def machine_notes() -> set[tuple[int, int]]:
    """(status channel 0-15, note) of every voice the gm drum machine can play."""
    machine = load_drum_machine("gm", load_kit())
    return {(d.status_channel, d.note) for d in machine.destinations if d is not None}


def daemon_on(root: Path, port: str) -> DaemonProcess:
    """The daemon configured to play to the existing ALSA port named like ``port``."""
    output = {"port": port, "virtual": False, "drum_machine": "gm"}
    return DaemonProcess(root, free_udp_port(), link={"enabled": False},
                         midi={"api": "alsa", "outputs": [output]})


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> list[Message]:
    """What aseqdump on Midi Through received from a daemon started, played and stopped."""
    with playing_through(tmp_path_factory.mktemp("played")) as (daemon, dump):
        start(daemon, dump)
        stop(daemon, dump)
        return dump.messages


@contextlib.contextmanager
def playing_through(root: Path) -> Iterator[tuple[DaemonProcess, SeqDump]]:
    """aseqdump on Midi Through, then the daemon (not started yet) playing to Midi Through."""
    dump = SeqDump(text(THROUGH))
    daemon = daemon_on(root, "Midi Through")
    try:
        yield daemon, dump
    finally:
        daemon.kill()
        dump.close()


def start(daemon: DaemonProcess, dump: Dump, notes: int = NOTES) -> None:
    daemon.start(ready=lambda: True)
    wait_until(lambda: dump.note_ons() >= notes, START_S, daemon)


def stop(daemon: DaemonProcess, dump: Dump) -> None:
    """SIGTERM, exit 0, then what the daemon sent last has arrived (its last All Notes Off)."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        code = daemon.proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        code = None
    assert code == 0, f"exit {code} after SIGTERM; daemon log:\n{daemon.text()[-3000:]}"
    dump.wait_for(lambda: not hanging(dump.messages), 30, "the last note-offs")


def text(address: alsaseq.Address) -> str:
    return f"{address[0]}:{address[1]}"


def lines(log: str, pattern: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(pattern, line)]


def our_port() -> alsaseq.Port:
    """rvaed's sequencer port that sends to Midi Through (the kernel's list, not rvaed's)."""
    ports = alsaseq.read_ports() or []
    ours = [p for p in ports if p.name.startswith("to ") and THROUGH in p.sends_to]
    assert len(ours) == 1, ports
    return ours[0]


def test_notes_are_balanced_at_an_alsa_receiver(played):
    problems = unpaired(played)
    assert not problems, f"{problems[:10]}; {counted(played)}"
    assert sum(map(is_note_on, played)) >= NOTES


def test_clean_slate_before_the_first_note(played, machine_notes):
    """Note-offs for every note the drum machine can send, and All Notes Off, come first."""
    missing = clean_slate_missing(played, machine_notes)
    assert not missing, f"before the first note-on: {before_first_note(played)}; " \
        f"missing {missing}"


def test_a_subscription_removed_from_outside_is_restored(tmp_path):
    with playing_through(tmp_path) as (daemon, dump):
        start(daemon, dump)
        cut = our_port()
        subprocess.run(["aconnect", "-d", text(cut.address), text(THROUGH)], check=True)
        now = {p.address: p for p in alsaseq.read_ports() or []}
        assert THROUGH not in now[cut.address].sends_to, "aconnect -d did not remove it"
        before = dump.note_ons()
        wait_until(lambda: dump.note_ons() >= before + NOTES, START_S, daemon)
        assert THROUGH in our_port().sends_to
        stop(daemon, dump)
        told = lines(daemon.text(), r"Midi Through.*subscription.*removed from outside")
        assert len(told) == 1, f"{told}; daemon log:\n{daemon.text()[-3000:]}"
        assert not hanging(dump.messages)


@pytest.fixture(scope="module")
def replugged(tmp_path_factory) -> tuple[str, list[Message]]:
    """The daemon playing to VirMIDI 0-0, its card unbound (the cable pulled) and bound again;
    returns the daemon's log and what the raw-MIDI end received after the replug."""
    dump = RawMidiDump(card=0, device=0)
    daemon = daemon_on(tmp_path_factory.mktemp("replugged"), VIRMIDI)
    try:
        start(daemon, dump)
        unplug()
        wait_until(lambda: bool(lines(daemon.text(), LOST)), START_S, daemon)
        assert all(p.name != VIRMIDI for p in alsaseq.read_ports() or []), "still there"
        plug()
        dump.wait_for(lambda: dump.segment >= 1, START_S, "the replugged device to open")
        wait_until(lambda: sum(map(is_note_on, dump.in_segment(1))) >= NOTES, START_S, daemon)
        stop(daemon, dump)
        return daemon.text(), dump.in_segment(1)
    finally:
        daemon.kill()
        dump.close()
        if not (PLATFORM / DEVICE).exists():
            plug()


LOST = rf"{VIRMIDI}.*(lost|vanished)"
DEVICE = "snd_virmidi.0"


def unplug() -> None:
    """Unbind the card; the kernel waits for its raw-MIDI reader to close, which it does."""
    subprocess.run(["sh", "-c", f"echo {DEVICE} > {PLATFORM}/unbind"], check=True, timeout=300)


def plug() -> None:
    subprocess.run(["sh", "-c", f"echo {DEVICE} > {PLATFORM}/bind"], check=True, timeout=300)


def test_unplugged_and_replugged_the_output_is_lost_once_and_comes_back(replugged):
    log, after = replugged
    assert len(lines(log, LOST)) == 1, lines(log, LOST)
    assert len(lines(log, rf"{VIRMIDI}.*reconnect")) == 1, log[-3000:]
    assert sum(map(is_note_on, after)) >= NOTES
    assert not unpaired(after), f"{unpaired(after)[:10]}; {counted(after)}"


def test_clean_slate_after_the_replug(replugged, machine_notes):
    _, after = replugged
    missing = clean_slate_missing(after, machine_notes)
    assert not missing, f"after the replug, before the first note-on: {before_first_note(after)}"\
        f"; missing {missing}"

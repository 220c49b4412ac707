"""End to end: a seed and a voice's chance, set over OSC from another process on the real
`rvaed run`, play the same notes with the same velocities in the same order at a JACK receiver
after the daemon is stopped and started again (its state keeps both), and another seed plays
other notes (64 bars each); and conditions set over OSC play their loops."""

import collections
import difflib
import re
import time

import pytest
from jackmidi import Receiver
from rig import DaemonProcess, free_udp_port, wait_until

from rvaed.engine.clock import now

NOTE_ON = 0x90
TEMPO = 480.0
FAST = 960.0  # the seed's 64 bars in 16 s
BARS = 64
SECONDS = BARS * 4 * 60 / FAST
TABLE = "decode table of"  # its log line once it decodes through it
STOPPED = re.compile(r"dropped too late: (\d+) note-ons, \d+ clock ticks, (\d+) more")


@pytest.fixture
def daemon(tmp_path, jack_server):
    process = DaemonProcess(tmp_path, free_udp_port(), link={"enabled": False})
    yield process
    process.kill()


def started(daemon: DaemonProcess, receiver: Receiver, tempo: float = TEMPO) -> None:
    """Start the daemon, stopped, and wait until it decodes through its table: its first
    seconds decode directly, which disagrees with the table on about one cell in four
    thousand (a run begun before the table was in played a hat more, once)."""
    tables = daemon.text().count(TABLE) if daemon.log.exists() else 0
    daemon.start()
    receiver.connect_from("rvaed:rvaed")
    wait_until(lambda: daemon.text().count(TABLE) > tables, 60, daemon)
    daemon.osc("/rvaed/play", 0)
    daemon.osc("/rvaed/tempo", tempo)  # not kept across a restart (Link's, when Link is on)


def played(daemon: DaemonProcess, receiver: Receiver) -> list[tuple[int, int]]:
    """(note, velocity) of every note-on of `BARS` bars played from the start at `FAST`."""
    time.sleep(0.5)  # the settings above are in
    start = now()
    daemon.osc("/rvaed/play", 1)
    time.sleep(SECONDS + 0.5)
    daemon.osc("/rvaed/play", 0)
    time.sleep(0.5)
    return [(m[1], m[2]) for t, m in receiver.kinds(NOTE_ON) if t > start]


def dropped(daemon: DaemonProcess) -> int:
    """Stop the daemon; the note-ons it dropped too late since it started (its stop line)."""
    assert daemon.stop() == 0
    late, waited = map(int, STOPPED.findall(daemon.text())[-1])
    return late + waited


def test_the_same_seed_plays_the_same_notes_after_a_restart(daemon, receiver):
    started(daemon, receiver, FAST)
    daemon.osc("/rvaed/chance/closed-hat", 0.5)
    daemon.osc("/rvaed/seed", 7)
    first = played(daemon, receiver)
    drops = dropped(daemon)
    started(daemon, receiver, FAST)  # the chance and the seed come back from the saved state
    again = played(daemon, receiver)
    daemon.osc("/rvaed/seed", 8)
    other = played(daemon, receiver)
    drops += dropped(daemon)
    n = min(len(first), len(again), len(other)) - 4  # the runs end a few notes apart
    print(f"notes heard: {len(first)}, {len(again)} after the restart, {len(other)} with "
          f"seed 8; {drops} dropped late")
    assert n > BARS * 8
    if drops == 0:
        assert first[:n] == again[:n]
    else:  # each note dropped late on a loaded machine is a gap in one of the runs
        same = difflib.SequenceMatcher(None, first[:n], again[:n], autojunk=False)
        assert sum(block.size for block in same.get_matching_blocks()) >= n - drops
    assert first[:n] != other[:n]


def test_conditions_set_over_osc_play_their_loops_at_the_receiver(daemon, receiver):
    started(daemon, receiver)
    daemon.osc("/rvaed/threshold", 0.3)  # the starter's kicks and snares in every loop
    daemon.osc("/rvaed/condition/kick", "1st")
    daemon.osc("/rvaed/condition/snare", "not 1st")
    daemon.osc("/rvaed/step", "closed-hat", 1, "1:2")
    time.sleep(0.5)
    start = now()
    daemon.osc("/rvaed/play", 1)
    time.sleep(4 * 60 / TEMPO * 2 * 4 + 0.3)  # four loops of two bars
    daemon.osc("/rvaed/play", 0)
    time.sleep(0.5)
    drops = dropped(daemon)
    ons = [(t, m[1]) for t, m in receiver.kinds(NOTE_ON) if t > start]
    kicks, snares = [t for t, n in ons if n == 36], [t for t, n in ons if n == 38]
    loop = 8 * 60 / TEMPO  # seconds
    print(f"{len(kicks)} kicks, {len(snares)} snares; {drops} dropped late")
    first = min(t for t, _ in ons)  # the loop's first note, near its step 0
    assert kicks and snares
    assert max(kicks) - first < loop - 0.05  # the first loop's alone
    assert min(snares) - first > loop - 0.05  # from the second loop on
    loops = collections.Counter(int((t - first + 0.05) // loop) for t in snares)
    full = [loops[n] for n in (1, 2, 3)]  # the fourth may have begun before the stop
    assert min(full) > 0 and max(full) - min(full) <= drops, loops

"""End to end: the density of one voice, sent over OSC from another process to the real `rvaed
run`, changes how many notes of that voice reach a JACK receiver, and of no other voice."""

import time
from collections import Counter

import pytest
from jackmidi import Receiver
from rig import DaemonProcess, free_udp_port

from rvaed.core.drummachine import load_drum_machine
from rvaed.core.kit import load_kit
from rvaed.engine.clock import now

NOTE_ON = 0x90
TEMPO = 240.0
LOOP = 8 * 60 / TEMPO  # two bars, in seconds
STEP = LOOP / 32
# Loops heard per measurement. The groove is played quantized (timing 0), so every note falls
# on a step and a loop counted from half a step after a note has no note near its edges; a
# JACK dummy server on a loaded machine can drop a cycle's events, so of the loops heard the
# fullest count of each voice is taken.
LOOPS = 3
NOTES = {d.note: v for v, d in enumerate(load_drum_machine("gm", load_kit()).destinations)}


@pytest.fixture
def daemon(tmp_path, jack_server):
    process = DaemonProcess(tmp_path, free_udp_port(), link={"enabled": False})
    yield process
    process.kill()


def one_loop(receiver: Receiver) -> Counter:
    """Note-ons per voice a loop, heard from a loop after the last change."""
    time.sleep(LOOP + 0.3)
    settled = now()
    time.sleep((LOOPS + 1) * LOOP + 0.2)
    notes = [(t, NOTES[m[1]]) for t, m in receiver.kinds(NOTE_ON) if t >= settled]
    start = notes[0][0] + STEP / 2
    loops = [Counter(voice for t, voice in notes
                     if start + i * LOOP <= t < start + (i + 1) * LOOP) for i in range(LOOPS)]
    return Counter({voice: max(loop[voice] for loop in loops) for voice in set().union(*loops)})


def test_the_density_of_one_voice_changes_its_notes_only(daemon, receiver):
    daemon.start()
    receiver.connect_from("rvaed:rvaed")
    assert receiver.wait_for(lambda m: any(s & 0xF0 == NOTE_ON for _, (s, *_) in m), 15), \
        daemon.text()[-2000:]
    daemon.osc("/rvaed/tempo", TEMPO)
    daemon.osc("/rvaed/timing", 0.0)
    daemon.osc("/rvaed/threshold", 0.5)
    daemon.osc("/rvaed/xy", 0.3, 0.6)
    before = one_loop(receiver)
    daemon.osc("/rvaed/density/closed-hat", 0.3)
    busier = one_loop(receiver)
    daemon.osc("/rvaed/density/closed-hat", -0.3)
    sparser = one_loop(receiver)
    hat = load_kit().names.index("closed-hat")
    print(f"closed-hat notes a loop: {sparser[hat]} (-0.3), {before[hat]} (0), "
          f"{busier[hat]} (+0.3); all: {dict(before)}")
    assert sparser[hat] < before[hat] < busier[hat]
    others = (set(before) | set(busier) | set(sparser)) - {hat}
    assert others, "only the closed hat played"
    for counts in (busier, sparser):
        assert {v: counts[v] for v in others} == {v: before[v] for v in others}

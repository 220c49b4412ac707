"""Capture: the current loop and the last N bars as MIDI files, read back with mido and with
load_pattern. The last-N-bars file is checked against what a real sequencer sent through a
private JACK server while the pattern changed mid-bar."""

import asyncio
import os
import sys
from dataclasses import replace

import mido
import numpy as np
import pytest
from checks import assert_one_line, require_tools
from jackmidi import Receiver
from performer import make_performance, shell, until

from rvaed.control.osc import OscServer
from rvaed.core.drummachine import load_drum_machine
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.pattern import OFFSET_MAX, Grid
from rvaed.core.patternfile import load_pattern
from rvaed.daemon.policy import FilePolicy, parse_allowlist
from rvaed.engine.clock import InternalClock
from rvaed.engine.midiout import Output
from rvaed.engine.schedule import roll
from rvaed.tools.capture import ROUTES, Capture

TEMPO = 300.0  # a bar every 0.8 s, a step every 50 ms
BAR = 4
HAT = 2  # closed hat: the densest voice
LATE = 0.25  # a received note is counted in the step it arrives up to 3/4 of a step after


def beat_now(clock) -> float:
    return clock.beat_at(clock.now())


async def at_beat(clock, target: float) -> None:
    """Wait until the clock reaches ``target`` (asyncio timers wake early: check the beat)."""
    while beat_now(clock) < target:
        await asyncio.sleep(0.002)


def cells(pattern) -> set[tuple[int, int, int]]:
    return {(h.voice, h.step, h.velocity) for h in pattern.hits(0.5)}


def test_the_current_loop_is_saved_as_it_plays(model_dir, tmp_path):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        capture = Capture(perf, tmp_path / "captures")
        perf.set("threshold", 0.45)
        perf.set("swing", 0.6)
        perf.set("velocity_scale", 0.5)
        perf.set_voice("mutes", 2, 1)
        perf.set("seed", 42)
        perf.set("chance_kick", 0.75)
        perf.flush()
        events = perf.schedule.events
        assert events and 2 not in {e.voice for e in events}
        path = await capture.capture()
        assert path.parent == tmp_path / "captures" and path.name.endswith("-pattern.mid")

        kit, grid = perf.decoder.kit, perf.grid
        loaded = load_pattern(path, kit, grid)
        assert cells(loaded) == {(e.voice, e.step, e.velocity) for e in events}
        for e in events:  # swing and microtiming as heard, in half steps, within the file's
            expected = min(OFFSET_MAX, max(-1.0, 2 * e.shift * grid.steps_per_beat))
            assert loaded.offsets[e.voice, e.step] == pytest.approx(expected, abs=1 / 100)
        midi = mido.MidiFile(path)
        notes = [m for m in midi if m.type == "note_on" and m.velocity]
        assert len(notes) == len(events)
        assert {m.note for m in notes} <= {v.output for v in kit.voices}
        assert midi.length == pytest.approx(grid.beats * 60 / perf.clock.tempo, abs=0.01)
        assert_recalls(midi, perf)
        await perf.stop()
    asyncio.run(scenario())


def test_the_coming_phrase_is_saved_as_the_seed_and_conditions_will_play_it(model_dir, tmp_path):
    async def scenario():
        perf = make_performance(model_dir)  # stopped: the phrase a start would play
        await perf.start()
        capture = Capture(perf, tmp_path / "captures")
        perf.set("threshold", 0.3)
        perf.set("seed", 42)
        perf.set("chance_kick", 0.5)
        perf.set("condition_snare", "2:2")
        perf.flush()
        path = await capture.capture(8, coming=True)
        assert path.name.endswith("-8-bars-coming.mid")
        kit, grid = perf.decoder.kit, perf.grid
        loaded = load_pattern(path, kit, replace(grid, bars=8))
        loop = {(e.voice, e.step, e.velocity) for e in perf.schedule.events}
        expected = {(v, n * grid.steps + s, velocity) for n in range(8 // grid.bars)
                    for v, s, velocity in loop
                    if (v != 0 or roll(42, n, s, 0) < 0.5) and (v != 1 or n % 2 == 1)}
        assert {(v, s, velocity) for v, s, velocity in loop if v in (0, 1)}  # kicks, snares
        assert cells(loaded) == expected
        assert_recalls(mido.MidiFile(path), perf, chance=0.5)
        await perf.stop()
    asyncio.run(scenario())


def assert_recalls(midi, perf, chance: float = 0.75) -> None:
    """The file names its model and every setting of the table as the state holds it."""
    texts = [m.text for m in midi if m.type == "text"]
    assert f"rvaed model: {perf.decoder.manifest.name}" in texts
    recall = next(t for t in texts if t.startswith("rvaed recall: "))
    settings = dict(item.split("=") for item in recall.removeprefix("rvaed recall: ").split())
    assert settings["seed"] == "42" and settings["chance_kick"] == f"{chance:g}"
    assert float(settings["x"]) == pytest.approx(perf.state.x, abs=1e-5)
    assert settings["threshold"] == f"{perf.state.threshold:g}"
    assert settings["swing"] == f"{perf.state.swing:g}"
    assert "tempo" not in settings and len(settings) > 20


@pytest.mark.usefixtures("jack_server")
def test_the_last_bars_are_what_the_sequencer_sent(model_dir, tmp_path):
    async def scenario():
        receiver = Receiver("capture-check")
        clock = InternalClock(TEMPO)
        output = Output("capture-check", load_drum_machine("gm", load_kit()), api="jack",
                        poll=0.05)
        perf = make_performance(model_dir, clock, [output])
        perf.set("timing", 0.0)  # notes on the steps: a received note's step is unambiguous
        perf.set("threshold", 0.25)
        # One voice: a received note's step is unambiguous.
        for voice in range(perf.decoder.kit.size):
            perf.set_voice("mutes", voice, voice != HAT)
        await perf.start()
        # silence from step `cut` of bar 3 on, where step cut - 1 plays a hit: the step before
        # a change is the one a wrong guess of where it applies would get wrong
        cut = next(s for s in range(4, 15) if s - 1 in {e.step for e in perf.schedule.events})
        capture = Capture(perf, tmp_path)
        await capture.start()
        perf.sequencer.start()
        await until(lambda: output.connected)
        clock.set_playing(True)
        first = BAR * 2  # bar 3 of the session: the first part of the loop again
        await at_beat(clock, first + (cut - 1.5) / 4)  # mid-step, a step ahead of the cut
        perf.set("threshold", 1.0)
        await at_beat(clock, first + BAR + 4.5 / 4)  # next bar, mid-step: another pattern from 22
        perf.set_xy(0.9, 0.1)
        perf.set("threshold", 0.2)
        await at_beat(clock, first + 3 * BAR + 1)
        path = await capture.capture(3)
        clock.set_playing(False)
        await asyncio.sleep(0.05)
        perf.sequencer.stop()
        await capture.close()
        await perf.stop()
        receiver.close()

        sent = {}  # step -> velocity; a note arrives up to a JACK period plus wake-ups late
        for t, message in receiver.kinds(0x90):
            position = (clock.beat_at(t) - first) * 4
            if message[2] and 0 <= position < 3 * 16:
                sent[int(position + LATE)] = message[2]
        saved = load_pattern(path, perf.decoder.kit, Grid(bars=3))
        played = {h.step: h.velocity for h in saved.hits(0.5) if h.voice == HAT}
        assert len(played) == len(saved.hits(0.5))  # the muted voices are not in the file
        # each change applies from the first step the sequencer had not queued (cut and 22)
        assert played == sent
        assert cut - 1 in played and not set(played) & set(range(cut, 22))
        assert set(played) & set(range(22, 48))

        assert path.name.endswith("-3-bars.mid")
        midi = mido.MidiFile(path)
        assert midi.type == 0 and midi.length == pytest.approx(3 * BAR * 60 / TEMPO, abs=0.01)
        assert [m.numerator for m in midi if m.type == "time_signature"] == [4]
    asyncio.run(scenario())


def test_captures_never_overwrite_and_bad_requests_say_why(model_dir, tmp_path):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        capture = Capture(perf, tmp_path)
        with pytest.raises(RvaedError) as error:
            await capture.capture(2)  # the transport is stopped: no bar has played
        assert_one_line(str(error.value), "no whole bar")
        with pytest.raises(RvaedError) as error:
            await capture.capture(0)
        assert_one_line(str(error.value), "1-64 bars")

        paths = [await capture.capture() for _ in range(3)]
        assert len(set(paths)) == 3 and all(p.exists() for p in paths)
        taken = paths[0].with_name(paths[0].name.replace("-pattern", "-pattern-4"))
        taken.write_bytes(b"someone else's file")
        for _ in range(3):
            paths.append(await capture.capture())
        assert taken.read_bytes() == b"someone else's file"
        assert len(set(paths)) == 6
        assert sorted(os.listdir(tmp_path)) == sorted([p.name for p in paths] + [taken.name])

        blocked = Capture(perf, tmp_path / "file")
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(RvaedError) as error:
            await blocked.capture()
        assert_one_line(str(error.value), "cannot write captures")
        await perf.stop()
    asyncio.run(scenario())


SECRET = "capture-test-secret"


def test_capture_over_osc_only_from_allowed_senders(model_dir, tmp_path):
    require_tools("oscsend")

    async def scenario():
        clock = InternalClock(TEMPO)
        clock.set_playing(True)
        perf = make_performance(model_dir, clock)
        perf.set("threshold", 0.3)
        await perf.start()
        server = OscServer(perf, host="127.0.0.1", port=0)
        captures = {}
        for name, allow in (("open", ["127.0.0.0/8"]), ("closed", ["10.0.0.0/8"])):
            policy = FilePolicy((tmp_path,), parse_allowlist(allow), 1 << 20, 1 << 22, SECRET)
            captures[name] = Capture(perf, tmp_path / name)
            await captures[name].start()
            server.serve([replace(route, address=f"{route.address}/{name}") for route in ROUTES],
                         captures[name], policy)
        await server.start()
        port = str(server.port)
        await at_beat(clock, 3 * BAR + 1)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/capture/open", "si", SECRET, "2")
        await shell("oscsend", "127.0.0.1", port, "/rvaed/capture/open", "s", SECRET)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/capture/open", "i", "2")  # no secret
        await shell("oscsend", "127.0.0.1", port, "/rvaed/capture/closed", "si", SECRET, "2")
        await until(lambda: len(list((tmp_path / "open").glob("*.mid"))) == 2)
        await until(lambda: server.rejected.count == 2)
        assert not (tmp_path / "closed").exists()
        two_bars = next((tmp_path / "open").glob("*-2-bars.mid"))
        loop = next((tmp_path / "open").glob("*-pattern.mid"))
        # the pattern never changed since the start at beat 0: bars 2 and 3 of the session are
        # the loop's second half, then its first
        kit, grid = perf.decoder.kit, perf.grid
        assert np.array_equal(load_pattern(two_bars, kit, grid).to_array(),
                              np.roll(load_pattern(loop, kit, grid).to_array(), 16, axis=2))
        await server.close()
        for capture in captures.values():
            await capture.close()
        await perf.stop()
    asyncio.run(scenario())


def test_a_capture_flood_is_held_to_the_rate_limit_and_the_folder_to_its_quota(
        model_dir, tmp_path, caplog):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        folder = tmp_path / "captures"
        capture = Capture(perf, folder, per_minute=5)
        policy = FilePolicy((folder,), parse_allowlist(["127.0.0.0/8"]), 1 << 20, 1 << 22,
                            SECRET)
        server = OscServer(perf, host="127.0.0.1", port=0)
        server.serve(ROUTES, capture, policy)
        await server.start()
        flood = ("from pythonosc.udp_client import SimpleUDPClient; "
                 f"c = SimpleUDPClient('127.0.0.1', {server.port}); "
                 f"[c.send_message('/rvaed/capture', [{SECRET!r}]) for _ in range(128)]")
        await shell(sys.executable, "-c", flood)  # 128 captures asked for at once, real UDP
        await until(lambda: server.received == 128)
        await until(lambda: len(list(folder.glob("*.mid"))) == 5)
        assert server.rejected.count == 123
        assert "capture refused: 5 in the last minute" in caplog.text
        assert "limits.captures_per_minute" in caplog.text
        size = sum(p.stat().st_size for p in folder.iterdir())
        full = Capture(perf, folder, quota_bytes=size + 10)  # less than one more capture
        with pytest.raises(RvaedError) as error:
            await full.capture()
        assert_one_line(str(error.value), "capture refused", "limits.captures_bytes")
        assert len(list(folder.glob("*.mid"))) == 5
        await server.close()
        await perf.stop()
    asyncio.run(scenario())

"""Find my groove: a pattern played into a MIDI input through a private JACK server, or sent as
a MIDI file (also over OSC), moves the pad to where the real model encodes it. What is played is
quantized exactly as training windows are (checked against the same notes read from a file)."""

import asyncio
import os

import numpy as np
import pytest
from checks import assert_one_line, require_tools
from midigen import beat_file, groove
from performer import SETTLE, make_performance, shell, until

from rvaed.control.osc import OscServer
from rvaed.core.errors import RvaedError
from rvaed.core.fileworker import FileWorker
from rvaed.core.patternfile import load_pattern
from rvaed.daemon.policy import FilePolicy, parse_allowlist
from rvaed.engine import midiapi
from rvaed.engine.clock import InternalClock
from rvaed.tools.groove import ROUTES, GrooveFiles, GrooveInput, groove_from_file

TEMPO = 200.0  # a bar every 1.2 s; half a step is 37.5 ms
BAR = 4
FLAM = 0.002  # seconds between notes played "together": a drummer never hits two at once


def beat_now(clock) -> float:
    return clock.beat_at(clock.now())


def test_a_pause_of_a_bar_jumps_to_the_last_two_bars_played_through_jack(
        model_dir, jack_server):
    async def scenario():
        clock = InternalClock(TEMPO)
        clock.set_playing(True)
        perf = make_performance(model_dir, clock)
        await perf.start()
        catcher = GrooveInput(perf, "TD-17", api="jack", channel=10, poll=0.05)
        await catcher.start()
        drums = midiapi.open_client("jack", "output", "fake-edrum")
        drums.open_virtual_port("TD-17 MIDI 1")
        await until(lambda: catcher.input.connected)
        await asyncio.sleep(SETTLE)

        start = (beat_now(clock) // BAR + 2) * BAR
        warm_up = [(float(b), 36, 90) for b in range(BAR)]  # a bar of kicks, then two of groove
        played = [*groove(2, start_bar=1), (BAR + 3.5, 46, 70), (2 * BAR + 3.75, 39, 127)]
        strays = [(BAR + 0.25, 60, 100, 10), (BAR + 0.5, 38, 100, 1)]  # unmapped; channel 1
        notes = sorted([(b, n, v, 10) for b, n, v in warm_up + played] + strays)
        when = {}
        for beat, note, velocity, channel in notes:
            target = clock.time_at(start + beat) + FLAM * when.get(beat, 0)
            while clock.now() < target:
                await asyncio.sleep(min(0.002, target - clock.now()))
            drums.send_message([0x8F + channel, note, velocity])
            when[beat] = when.get(beat, 0) + 1
        last_bar_end = start + 3 * BAR
        while beat_now(clock) < last_bar_end + BAR - 0.25:  # the pause: no jump yet
            assert catcher.jumps == 0
            await asyncio.sleep(0.01)
        await until(lambda: catcher.jumps == 1, timeout=2.0)
        assert beat_now(clock) >= last_bar_end + BAR

        kit = perf.decoder.kit
        expected = {(kit.voice_of(n), round((b - BAR) * 4), v) for b, n, v in played}
        caught = catcher.last
        assert {(h.voice, h.step, h.velocity) for h in caught.hits(0.5)} == expected
        offsets = caught.offsets[caught.onsets > 0]  # flams and a loaded machine: late, not early
        assert offsets.min() > -0.05 and offsets.max() < 0.9
        assert (perf.state.x, perf.state.y) == perf.decoder.encode_xy(caught)
        perf.flush()
        assert perf.pattern == perf.decoder.decode_xy(perf.state.x, perf.state.y)
        drums.close_port()
        drums.delete()
        await catcher.close()
        await perf.stop()
    asyncio.run(scenario())


def test_live_notes_are_quantized_exactly_like_a_training_file(model_dir, tmp_path):
    async def scenario():
        clock = InternalClock(TEMPO)  # stopped: the beats run all the same
        perf = make_performance(model_dir, clock)
        catcher = GrooveInput(perf, "unused")  # fed beats directly; the JACK test feeds MIDI
        notes = [*groove(2), (2.53125, 38, 64), (3.96875, 36, 127), (6.5, 60, 100)]
        start = 12.0
        for beat, note, velocity in sorted(notes):
            catcher.add(start + beat, note, velocity)
        assert catcher.take(start + 3 * BAR) is None  # the pause is a bar and half a step
        pattern = catcher.take(start + 3 * BAR + 0.2)
        from_file = load_pattern(beat_file(tmp_path / "same.mid", notes), perf.decoder.kit,
                                 perf.grid)
        assert np.array_equal(pattern.to_array(), from_file.to_array())
        assert pattern.offsets[1, 10] == 0.25  # a little late
        assert pattern.velocities[0, 16] == 1.0  # the louder of two kicks in one cell ...
        assert pattern.offsets[0, 16] == -0.25  # ... a little early
        assert catcher.take(start + 100) is None  # used up
    asyncio.run(scenario())


def test_too_little_or_a_single_bar_played(model_dir):
    async def scenario():
        clock = InternalClock(TEMPO)
        perf = make_performance(model_dir, clock)
        catcher = GrooveInput(perf, "unused")
        for beat in (40.0, 41.0, 42.0):
            catcher.add(beat, 36, 100)
        assert catcher.take(60.0) is None  # three notes: a stray touch, not a groove
        for beat, note, velocity in groove(1, start_bar=10):
            catcher.add(beat, note, velocity)
        catcher.add(43.96875, 39, 100)  # the "one" of the next bar, a little early ...
        assert catcher.take(48.2) is None  # ... so the pause has not started
        pattern = catcher.take(52.2)  # the last two bars: the groove and the closing hit
        assert pattern.onsets[:, :16].sum() == 12 and pattern.onsets[:, 16:].sum() == 1
        assert pattern.onsets[7, 16] == 1 and pattern.offsets[7, 16] < 0
        for beat, note, velocity in groove(1, start_bar=20):
            catcher.add(beat, note, velocity)
        pattern = catcher.take(88.2)  # one bar played: it is the pattern's first bar
        assert pattern.onsets[:, :16].sum() == 12 and pattern.onsets[:, 16:].sum() == 0
    asyncio.run(scenario())


def test_a_midi_file_moves_the_pad_and_a_bad_one_says_why(model_dir, tmp_path):
    perf = make_performance(model_dir)
    path = beat_file(tmp_path / "groove.mid", groove(4))
    x, y = groove_from_file(perf, path)
    kit, grid = perf.decoder.kit, perf.grid
    assert (perf.state.x, perf.state.y) == (x, y) == \
        perf.decoder.encode_xy(load_pattern(path, kit, grid))
    assert perf.pattern == perf.decoder.decode_xy(x, y)
    (tmp_path / "notes.txt").write_text("kick snare")
    with pytest.raises(RvaedError) as error:
        groove_from_file(perf, tmp_path / "notes.txt")
    assert_one_line(str(error.value), "notes.txt", "not a MIDI file")
    assert (perf.state.x, perf.state.y) == (x, y)


SECRET = "groove-test-secret"


def test_groove_over_osc_stays_inside_the_data_directories(model_dir, tmp_path):
    require_tools("oscsend")

    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        data = tmp_path / "captures"
        path = beat_file(data / "mine.mid", [*groove(2), (0.5, 46, 90), (5.0, 39, 120)])
        beat_file(tmp_path / "elsewhere.mid", groove(2))
        policy = FilePolicy((data,), parse_allowlist(["127.0.0.0/8"]), 1 << 20, 1 << 22,
                            SECRET)
        server = OscServer(perf, host="127.0.0.1", port=0)
        server.serve(ROUTES, GrooveFiles(perf, policy, data), policy)
        await server.start()
        port = str(server.port)
        for refused in ("../elsewhere.mid", str(tmp_path / "elsewhere.mid"), "missing.mid"):
            await shell("oscsend", "127.0.0.1", port, "/rvaed/groove", "ss", SECRET, refused)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/groove", "s", "mine.mid")  # no secret
        await until(lambda: server.rejected.count == 4)
        assert (perf.state.x, perf.state.y) == (0.5, 0.5)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/groove", "ss", SECRET, "mine.mid")
        expected = perf.decoder.encode_xy(load_pattern(path, perf.decoder.kit, perf.grid))
        await until(lambda: (perf.state.x, perf.state.y) == expected)
        await server.close()
        await perf.stop()
    asyncio.run(scenario())


def test_a_big_file_or_a_fifo_is_read_off_the_loop_and_the_loop_keeps_answering(
        model_dir, tmp_path, caplog):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        data = tmp_path / "captures"
        big = beat_file(data / "big.mid", groove(9500))  # 988 KB, legal: seconds of parsing
        os.mkfifo(data / "fifo.mid")  # no writer: a blocking open or read waits forever
        policy = FilePolicy((data,), parse_allowlist(["127.0.0.0/8"]), 1 << 20, 1 << 22,
                            SECRET)
        server = OscServer(perf, host="127.0.0.1", port=0)
        worker = FileWorker()
        server.serve(ROUTES, GrooveFiles(perf, policy, data, worker), policy)
        await server.start()
        port = str(server.port)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/groove", "ss", SECRET, "fifo.mid")
        await until(lambda: "not a regular file (a FIFO)" in caplog.text, 60)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/groove", "ss", SECRET, big.name)
        await shell("oscsend", "127.0.0.1", port, "/rvaed/x", "f", "0.125")
        await until(lambda: perf.state.x == 0.125)  # answered while the file is parsed
        assert perf.state.y == 0.5 and worker.waiting == 1, "the big file was read first"
        expected = perf.decoder.encode_xy(load_pattern(big, perf.decoder.kit, perf.grid))
        await until(lambda: (perf.state.x, perf.state.y) == expected, 60)
        await server.close()
        await perf.stop()
        worker.close()
    require_tools("oscsend")
    asyncio.run(scenario())


def test_a_file_that_takes_too_long_is_refused_and_the_next_one_is_read(model_dir, tmp_path,
                                                                        caplog):
    async def scenario():
        perf = make_performance(model_dir)
        big = beat_file(tmp_path / "big.mid", groove(9500))
        small = beat_file(tmp_path / "small.mid", groove(2))
        worker = FileWorker(seconds=0.2)  # of processor time: far less than the big file takes
        files = GrooveFiles(perf, FilePolicy((tmp_path,), (), 1 << 20, 1 << 22), tmp_path,
                            worker)
        await worker.run("warm-up", str, 1)  # the worker started: its start is not timed
        first = worker.pid
        assert await files.jump_to_file(big) is None
        assert_one_line(caplog.records[-1].getMessage(), "big.mid",
                        "more than 0.2 s of processor time")
        worker.seconds = 30.0
        assert await files.jump_to_file(small) == (perf.state.x, perf.state.y) != (0.5, 0.5)
        assert worker.pid == first  # stopped mid-parse, it was free for the next file
        worker.close()
    asyncio.run(scenario())

"""The performance: one decode of the newest value per burst, freeze, mute, presets, noise.

Real parts: an ONNX model decoded by onnxruntime (the shipped starter model, or a small one
exported here when the starter is absent), the real schedule builder and the real sequencer's
install (no MIDI output is needed to prove what gets installed).
"""

import asyncio
import math

import numpy as np
import pytest
from performer import make_performance

from rvaed.core.conditions import CONDITIONS
from rvaed.core.state import DENSITY
from rvaed.daemon.persist import Saved, StateStore
from rvaed.engine.clock import InternalClock
from rvaed.engine.schedule import Playback, build_schedule


def run(coroutine_function, *args):
    """Run ``coroutine_function(*args)`` on a fresh event loop (tests are plain functions)."""
    return asyncio.run(coroutine_function(*args))


def voices_played(schedule) -> set[int]:
    return {event.voice for event in schedule.events}


def test_a_burst_of_changes_is_one_decode_of_the_newest_value(model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        decodes, installs = perf.decodes, perf.installs
        rng = np.random.default_rng(0)
        for x, y in rng.random((500, 2)):
            perf.set_xy(x, y)
        perf.set_xy(0.9, 0.1)
        await asyncio.sleep(0)  # the queued update runs
        await asyncio.sleep(0)
        assert perf.decodes == decodes + 1
        assert perf.installs == installs + 1
        assert perf.pattern == perf.decoder.decode_xy(0.9, 0.1)
        assert perf.sequencer.schedule is perf.schedule
        assert perf.latency.count == 1
        await perf.stop()
    run(scenario)


def test_explore_spans_the_prior_and_the_map_and_groove_follow(model_dir):
    from rvaed.control.web import view
    from rvaed.model.latent import EXPLORE
    from rvaed.tools.groove import jump_to

    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        box = perf.decoder.manifest.latent
        perf.set_xy(0.0, 1.0)
        perf.flush()
        assert perf.pattern == perf.decoder.decode(box.low[0], box.high[1])
        inside = view.map_id(perf)
        perf.set("explore", 1)
        perf.flush()
        assert perf.region is EXPLORE and perf.state.explore
        assert perf.pattern == perf.decoder.decode(-3.0, 3.0)  # the same corner, 3 sd out
        assert view.map_id(perf) != inside
        corner = view.latent_map(perf.decoder, 3, perf.region)["tiles"][0]
        assert corner == view.latent_map(perf.decoder, 3, EXPLORE)["tiles"][0]
        groove = perf.decoder.decode(*box.z_of(0.5, 0.5))
        x, y = jump_to(perf, groove)  # found on the explore pad: near its middle, not at 0.5
        z = perf.decoder.encode(groove)
        assert (x, y) == pytest.approx(EXPLORE.xy_of(*z))
        perf.set("explore", 0)
        perf.flush()
        assert perf.region is box
        await perf.stop()
    run(scenario)


def test_playback_changes_rebuild_the_schedule_without_decoding(model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        decodes = perf.decodes
        perf.set("threshold", 0.05)
        perf.flush()
        busy = len(perf.schedule.events)
        perf.set("threshold", 0.95)
        perf.flush()
        assert len(perf.schedule.events) < busy
        assert perf.decodes == decodes
        perf.set("threshold", 0.95)  # no change: nothing queued
        assert perf.installs == 3
        await perf.stop()
    run(scenario)


def test_mute_silences_a_voice_and_freeze_keeps_its_hits(model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        perf.set("threshold", 0.3)
        perf.set_xy(0.1, 0.1)
        perf.flush()
        kick = perf.pattern.onsets[0] > 0.3
        perf.set_voice("freezes", 0, 1)
        perf.set_voice("mutes", 1, 1)
        perf.flush()
        assert 1 not in voices_played(perf.schedule)
        for x in np.linspace(0, 1, 7):
            perf.set_xy(x, 1 - x)
            perf.flush()
            assert np.array_equal(perf.pattern.onsets[0] > 0.3, kick)
        perf.set_voice("freezes", 0, 0)
        perf.set_voice("mutes", 1, 0)
        perf.flush()
        assert perf.pattern == perf.decoder.decode_xy(1.0, 0.0)
        await perf.stop()
    run(scenario)


def test_preset_recall_glides_over_the_transition_time(model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        perf.set_xy(0.0, 0.0)
        perf.store_preset(1)
        perf.set_xy(1.0, 1.0)
        perf.store_preset(2)
        assert not perf.recall_preset(5)  # empty slot
        perf.set_transition(300, "ms")
        perf.recall_preset(1)
        await asyncio.sleep(0.15)
        assert 0.2 < perf.state.x < 0.8
        await asyncio.sleep(0.3)
        assert (perf.state.x, perf.state.y) == (0.0, 0.0)
        assert perf.pattern == perf.decoder.decode_xy(0.0, 0.0)
        perf.recall_preset(2)
        await asyncio.sleep(0.05)
        perf.set("x", 0.5)  # the performer takes over: the glide stops
        await asyncio.sleep(0.1)
        assert perf.state.x == 0.5
        await perf.stop()
    run(scenario)


def test_a_preset_keeps_its_conditions_and_recalls_them_through_the_state_file(model_dir,
                                                                              tmp_path):
    perf = make_performance(model_dir)
    perf.set("condition_kick", "1:4")
    perf.set_step(1, 4, "fill")
    perf.store_preset(3)
    perf.set("condition_kick", "always")
    perf.set_step(1, 4, "always")
    perf.set_step(2, 0, "25%")
    store = StateStore(tmp_path / "state.json")
    store.save({"state": perf.state.to_dict()})
    perf.state = Saved.load(store).state(perf.decoder.kit.size)  # as after a restart
    assert perf.recall_preset(3)
    perf.flush()
    assert perf.state.condition_kick == CONDITIONS.index("1:4")
    assert perf.state.steps == ((1, 4, "fill"),)
    assert [c.name for c in perf.schedule.conditions[:1]] == ["1:4"]
    assert {at: c.name for at, c in perf.schedule.trigs.items()} == {(1, 4): "fill"}


def test_a_fill_from_afar_comes_from_the_busiest_point_around(model_dir):
    perf = make_performance(model_dir)  # stopped: the fill is made (a start may need it)
    perf.set("phrase", 2)
    perf.set("threshold", 0.7)
    perf.set("fill", 0.2)
    perf.set_xy(0.5, 0.5)
    perf.flush()
    near = {(e.voice, e.step) for e in perf.schedule.fill.events}
    perf.set("fill_from", 0.3)
    perf.flush()
    around = [perf.decoder.decode_xy(0.5 + 0.3 * math.cos(a), 0.5 + 0.3 * math.sin(a))
              for a in np.arange(8) * math.pi / 4]
    busiest = max(around, key=lambda p: p.count(0.5))  # threshold 0.7 less the fill's 0.2
    assert busiest.count(0.5) > len(near)  # the model has a busier point around
    assert {(e.voice, e.step) for e in perf.schedule.fill.events} == {
        (h.voice, h.step) for h in busiest.hits(0.5)}
    assert perf.schedule.events == build_schedule(perf.pattern, perf.grid, Playback(
        threshold=0.7), perf.drum_machine).events  # the loop itself is the playing point's


def test_noise_jitters_z_once_per_bar_and_stops_when_off(model_dir):
    async def scenario():
        clock = InternalClock(tempo=999)  # a bar every 0.24 s
        clock.set_playing(True)
        perf = make_performance(model_dir, clock)
        await perf.start()
        plain = perf.pattern
        perf.set("noise", 1.0)
        decodes = perf.decodes
        await asyncio.sleep(0.8)
        assert 2 <= perf.decodes - decodes <= 5
        assert perf.pattern != plain
        perf.set("noise", 0.0)
        await asyncio.sleep(0.3)
        assert perf.pattern == plain
        await perf.stop()
    run(scenario)


def test_the_same_seed_rolls_the_same_noise_and_another_seed_other_noise(model_dir):
    async def jitters(seed: int) -> list[tuple[float, float]]:
        clock = InternalClock(tempo=999)  # a bar every 0.24 s
        clock.set_playing(True)
        perf = make_performance(model_dir, clock)
        perf.set("seed", seed)
        perf.set("noise", 0.5)
        await perf.start()
        seen = []
        for _ in range(12):
            await asyncio.sleep(0.06)
            if not seen or seen[-1] != perf._jitter:
                seen.append(perf._jitter)
        await perf.stop()
        return seen[1:4]  # the first bars' noise (from the second: the first may be partial)

    async def scenario():
        first, again, other = await jitters(5), await jitters(5), await jitters(6)
        assert len(first) == 3 and first == again and first != other
    run(scenario)


def test_a_fill_asked_for_is_made_until_its_bar_has_played(model_dir):
    async def scenario():
        clock = InternalClock(tempo=999)  # a bar every 0.24 s
        clock.set_playing(True)
        perf = make_performance(model_dir, clock)
        await perf.start()
        perf.set("threshold", 0.6)
        perf.flush()
        assert perf.sequencer.schedule.fill is None  # no phrases, no fill asked for
        perf.fill_next_bar()
        fill = perf.sequencer.schedule.fill
        assert fill is not None and len(fill.events) > len(perf.sequencer.schedule.events)
        await asyncio.sleep(0.6)  # that bar has played
        perf.set("threshold", 0.55)
        perf.flush()
        assert perf.sequencer.schedule.fill is None
        await perf.stop()
    run(scenario)


def test_a_phrases_fill_is_made_before_its_bar_and_not_between_fills(model_dir):
    async def scenario():
        clock = InternalClock(tempo=480)  # a bar every 0.5 s: a phrase of 4 bars in 2 s
        perf = make_performance(model_dir, clock)
        await perf.start()
        perf.set("phrase", 4)
        perf.set("threshold", 0.6)
        perf.sequencer.start()
        perf.set("playing", True)
        seen = []
        for _ in range(250):  # 5 s, a look every 20 ms
            await asyncio.sleep(0.02)
            beat, step, _speed = perf.playhead()
            now = step + (clock.beat_at(clock.now()) - beat) * perf.grid.steps_per_beat
            seen.append((now, perf.sequencer.schedule.fill is not None))
        perf.sequencer.stop()
        await perf.stop()
        return seen
    seen = run(scenario)
    bar = 16
    in_fills = [made for now, made in seen if now % (4 * bar) >= 3 * bar]
    print(f"fill made in {sum(m for _, m in seen)} of {len(seen)} looks")
    assert in_fills and all(in_fills)  # made whenever a fill bar plays
    assert not all(made for _, made in seen)  # and not all the time
def test_tempo_and_transport_go_to_the_clock(model_dir):
    perf = make_performance(model_dir)
    perf.set("tempo", 5000)
    perf.set("playing", 1)
    assert perf.clock.tempo == 999 and perf.clock.playing
    with pytest.raises(ValueError):
        perf.set("tempo", float("nan"))
    with pytest.raises(ValueError):
        perf.set("colour", 1)
    assert perf.clock.tempo == 999


def test_the_playing_decoder_is_tabulated_off_the_loop_and_decodes_through_it(model_dir,
                                                                                caplog):
    async def scenario():
        perf = make_performance(model_dir)
        caplog.set_level("INFO", logger="rvaed.control.performance")
        await perf.start()
        first = perf.decoder
        assert first.table is None  # it plays at once, decoding directly
        bent = first.bent(0.2, seed=3)
        perf.use_decoder(bent)  # before the first one settled: only the newest is tabulated
        ticks = 0
        while bent.table is None and ticks < 600:
            await asyncio.sleep(0.05)
            ticks += 1  # the loop keeps turning while the table is built
        assert bent.table is not None and first.table is None and ticks >= 20
        perf.set_xy(0.3, 0.7)
        perf.flush()
        direct = bent.decode_many(np.array([bent.manifest.latent.z_of(0.3, 0.7)]))[0]
        assert perf.pattern.to_array() == pytest.approx(direct, abs=0.03)
        await perf.stop()
    run(scenario)
    (line,) = [r.getMessage() for r in caplog.records if "decode table" in r.getMessage()]
    assert "129 x 129" in line and "decoding through it" in line


def hits_by_voice(schedule) -> dict[int, set[int]]:
    """The steps each voice plays in ``schedule``."""
    played: dict[int, set[int]] = {}
    for event in schedule.events:
        played.setdefault(event.voice, set()).add(event.step)
    return played


@pytest.mark.parametrize(("voice", "offset"), [(0, -0.3), (2, 0.3), (8, 0.4)])
def test_a_density_offset_changes_the_onsets_of_its_voice_only(model_dir, voice, offset):
    """Of the decoded pattern, only the voice whose density moved plays other steps: busier
    (a superset of its steps) for a positive offset, sparser (a subset) for a negative one."""
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        perf.set_xy(0.3, 0.6)
        perf.flush()
        decodes, before = perf.decodes, hits_by_voice(perf.schedule)
        perf.set(DENSITY[voice], offset)
        perf.flush()
        after = hits_by_voice(perf.schedule)
        assert perf.decodes == decodes  # the same decoded pattern, played differently
        others = set(range(perf.pattern.voices)) - {voice}
        assert {v: before.get(v) for v in others} == {v: after.get(v) for v in others}
        mine, now = before.get(voice, set()), after.get(voice, set())
        assert mine != now
        assert (now > mine) if offset > 0 else (now < mine)
        expected = perf.pattern.onsets[voice] > perf.state.threshold - offset
        assert now == set(np.flatnonzero(expected).tolist())
        await perf.stop()
    run(scenario)


def test_a_frozen_voice_keeps_the_hits_its_density_made(model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        perf.set_xy(0.3, 0.6)
        perf.set(DENSITY[2], 0.4)
        perf.flush()
        busy = hits_by_voice(perf.schedule)[2]
        perf.set_voice("freezes", 2, 1)
        perf.set(DENSITY[2], 0.0)
        perf.flush()
        assert hits_by_voice(perf.schedule)[2] == busy
        await perf.stop()
    run(scenario)

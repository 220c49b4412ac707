"""Controller maps: every shipped map loads, each source and transform does what it says, and
a wrong file gets one line naming file, line and field."""

import asyncio

import pytest
from performer import make_performance

from rvaed.control.controls import Controls
from rvaed.control.mapfile import load_mapping, shipped_mappings
from rvaed.core.drummachine import load_drum_machine, shipped_drum_machines
from rvaed.core.errors import RvaedError
from rvaed.core.kit import load_kit
from rvaed.core.state import PARAMETERS

KIT = load_kit()
READY_MAPS = {"generic", "touchosc", "touchosc-new", "open-stage-control", "nanokontrol2",
              "launch-control-xl", "x-touch-mini", "mpk-mini-mk3", "beatstep", "lpd8",
              "nanopad2"}
DRUM_MACHINES = {"gm", "tr-8s", "tr-8", "tr-6s", "tr-09", "rd-8", "rd-9", "volca-beats",
                 "volca-drum", "digitakt"}


def test_every_shipped_controller_map_loads_and_names_its_source():
    assert set(shipped_mappings()) >= READY_MAPS
    for name, path in shipped_mappings().items():
        mapping = load_mapping(name, KIT)
        assert mapping.bindings
        assert "source" in path.read_text().lower(), f"{name}: say where the map comes from"


def test_every_shipped_drum_machine_map_loads_with_its_source():
    assert set(shipped_drum_machines()) >= DRUM_MACHINES
    for name in shipped_drum_machines():
        machine = load_drum_machine(name, KIT)
        assert machine.source
        assert len(machine.destinations) == KIT.size
    assert load_drum_machine("volca-drum", KIT).channels == {1, 2, 3, 4, 5, 6}
    assert load_drum_machine("digitakt", KIT).channels == set(range(1, 9))


def controls_for(tmp_path, model_dir, text):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    perf = make_performance(model_dir)
    return Controls(perf, [load_mapping(path, KIT)]), perf


def test_seven_and_fourteen_bit_cc_pitch_bend_and_channels(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, """
channel: 2
bindings:
  - {cc: 1, target: x}
  - {cc: 12, lsb: 44, target: y}
  - {pitchbend: true, target: noise, channel: any}
""")
    assert controls.midi(None, [0xB1, 1, 127])
    assert perf.state.x == 1.0
    assert not controls.midi(None, [0xB0, 1, 0])  # channel 1: not bound
    assert perf.state.x == 1.0
    controls.midi(None, [0xB1, 12, 64])  # MSB alone (LSB reset to 0)
    assert perf.state.y == pytest.approx(8192 / 16383)
    controls.midi(None, [0xB1, 44, 127])
    assert perf.state.y == pytest.approx(8319 / 16383)
    controls.midi(None, [0xE5, 0x7F, 0x7F])
    assert perf.state.noise == 1.0


@pytest.mark.parametrize(("mode", "up", "down"), [("twos-complement", 1, 127),
                                                   ("signed-bit", 1, 65),
                                                   ("signed-bit-2", 65, 1),
                                                   ("binary-offset", 65, 63)])
def test_relative_encoders_in_each_mode(tmp_path, model_dir, mode, up, down):
    controls, perf = controls_for(tmp_path, model_dir, f"""
bindings:
  - {{cc: 16, relative: {mode}, step: 0.1, target: x}}
""")
    start = perf.state.x
    controls.midi(None, [0xB0, 16, up])
    assert perf.state.x == pytest.approx(start + 0.1)
    controls.midi(None, [0xB0, 16, down])
    controls.midi(None, [0xB0, 16, down])
    assert perf.state.x == pytest.approx(start - 0.1)


def test_notes_toggle_and_momentary_and_program_changes(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, """
bindings:
  - {note: 36, target: mute.kick, mode: toggle}
  - {note: 38, target: freeze.snare}
  - {program: 3, target: preset.recall.1}
  - {cc: 20, target: preset.store.1}
""")
    for message in ([0x99, 36, 100], [0x89, 36, 0], [0x99, 36, 90], [0x99, 36, 0]):
        controls.midi(None, message)
    assert perf.state.mutes == frozenset()  # toggled on, then off
    controls.midi(None, [0x99, 36, 1])
    assert perf.state.mutes == {0}
    controls.midi(None, [0x90, 38, 50])
    assert perf.state.freezes == {1}
    controls.midi(None, [0x90, 38, 0])
    assert perf.state.freezes == frozenset()
    perf.set_xy(0.25, 0.75)
    controls.midi(None, [0xB0, 20, 127])
    perf.set_xy(0.9, 0.9)
    controls.midi(None, [0xC0, 3])
    assert (perf.state.x, perf.state.y) == (0.25, 0.75)


def test_osc_argument_index_swap_and_transforms(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, """
swap_xy: true
bindings:
  - {osc: /1/xy1, arg: 0, target: x}
  - {osc: /1/xy1, arg: 1, target: y}
  - {osc: /th, target: threshold, invert: true, range: [0.2, 0.6]}
  - {osc: /curve, target: noise, curve: 2, deadzone: 0.1}
""")
    assert controls.osc("/1/xy1", (0.2, 0.7))
    assert (perf.state.x, perf.state.y) == (0.7, 0.2)  # swapped
    controls.osc("/th", (0.0,))
    assert perf.state.threshold == pytest.approx(0.6)
    controls.osc("/curve", (0.05,))
    assert perf.state.noise == 0.0
    controls.osc("/curve", (0.5,))
    assert perf.state.noise == pytest.approx(0.25)
    assert not controls.osc("/other", (1.0,))
    for bad in ((), ("a", "b"), (float("nan"), 0.0)):
        with pytest.raises(ValueError):
            controls.osc("/1/xy1", bad)
    assert 0 <= perf.state.x <= 1


def test_soft_takeover_waits_for_the_knob_to_reach_the_value(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, """
bindings:
  - {cc: 7, target: x, takeover: soft}
""")
    perf.set("x", 0.5)
    controls.midi(None, [0xB0, 7, 127])  # far away: ignored
    assert perf.state.x == 0.5
    controls.midi(None, [0xB0, 7, 100])
    assert perf.state.x == 0.5
    controls.midi(None, [0xB0, 7, 60])  # crossed 0.5 on the way down: picked up
    assert perf.state.x == pytest.approx(60 / 127)
    controls.midi(None, [0xB0, 7, 10])  # now it follows
    assert perf.state.x == pytest.approx(10 / 127)
    perf.set("x", 0.9)  # moved elsewhere: the knob must catch up again
    controls.midi(None, [0xB0, 7, 20])
    assert perf.state.x == 0.9


def test_smoothing_slews_towards_the_control_value(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, """
bindings:
  - {cc: 7, target: x, smoothing: 2}
""")

    async def scenario():
        perf.set("x", 0.0)
        controls.midi(None, [0xB0, 7, 127])
        await asyncio.sleep(0.2)
        assert 0.2 < perf.state.x < 0.7  # 2 ranges per second: about 0.4 after 0.2 s
        await asyncio.sleep(0.5)
        assert perf.state.x == 1.0
        await controls.close()
    asyncio.run(scenario())


def test_system_messages_are_ignored(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, "bindings:\n  - {cc: 1, target: x}\n")
    for message in ([0xF0, 1, 2, 0xF7], [0xF8], [0xFE], [0xFA], [0x7F]):
        assert not controls.midi(None, message)
    assert perf.state.x == 0.5


@pytest.mark.parametrize(("text", "expected"), [
    ("bindings:\n  - {cc: 200, target: x}\n", ":2: bindings[0].cc: expected a cc number 0-127"),
    ("bindings:\n  - {cc: 1, target: z}\n", ":2: bindings[0].target: expected one of"),
    ("bindings:\n  - {cc: 1, note: 3, target: x}\n", ":2: bindings[0]: expected exactly one"),
    ("bindings:\n  - {cc: 1, target: mute.cowbell}\n", "mute: not a voice of kit rhythmvae"),
    ("bindings:\n  - {osc: nope, target: x}\n", ":2: bindings[0].osc: expected an OSC address"),
    ("channel: 17\nbindings:\n  - {cc: 1, target: x}\n", ":1: channel: expected a MIDI channel"),
    ("bindings:\n  - {cc: 1, target: x}\n  - {cc: 2, target: x, range: [0, 5]}\n",
     ":3: bindings[1].range: expected [low, high] within 0..1"),
    ("bindings:\n  - {cc: 1, target: preset.recall.9}\n", "preset.recall.N with N 1-8"),
    ("bindings:\n  - {cc: 1, relative: fast, target: x}\n", "bindings[0].relative: expected"),
    ("bindings:\n  - {cc: 1, target: x, mode: toggle}\n", "bindings[0].mode: only for a switch"),
    ("bindings:\n  - {cc: 1, target: x, colour: red}\n", "bindings[0].colour: unknown field"),
    ("bindings:\n  - {cc: 1, target: x, curve: .nan}\n", "bindings[0].curve: expected"),
    ("bindings: []\n", ":1: bindings: expected a non-empty list"),
    ("bindings: [\n", "invalid YAML"),
])
def test_a_wrong_map_is_one_line_naming_file_line_and_field(tmp_path, text, expected):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(RvaedError) as error:
        load_mapping(path, KIT)
    message = str(error.value)
    assert str(path) in message and expected in message and "\n" not in message


def test_unknown_map_name_lists_the_shipped_ones():
    with pytest.raises(RvaedError, match="nanokontrol2"):
        load_mapping("no-such-controller", KIT)


def test_every_parameter_is_a_target_over_its_whole_range(tmp_path, model_dir):
    numbers = [name for name, row in PARAMETERS.items() if row.kind is not bool]
    bindings = "".join(f"  - {{cc: {cc}, target: {name}}}\n" for cc, name in enumerate(numbers))
    controls, perf = controls_for(tmp_path, model_dir, "bindings:\n" + bindings + """\
  - {note: 36, target: playing, mode: toggle}
""")
    for cc, name in enumerate(numbers):
        controls.midi(None, [0xB0, cc, 127])
        assert getattr(perf.state, name) == PARAMETERS[name].high, name
    controls.midi(None, [0xB0, numbers.index("fixed_velocity"), 0])
    assert perf.state.fixed_velocity is None  # the bottom of the fader is "off"
    assert controls.get(controls.mappings[0].bindings[0].target) == 1.0
    playing = perf.state.playing
    controls.midi(None, [0x90, 36, 100])
    assert perf.state.playing is not playing  # a switch target


def test_new_mappings_route_at_once_and_the_old_ones_no_more(tmp_path, model_dir):
    controls, perf = controls_for(tmp_path, model_dir, "bindings:\n  - {osc: /a, target: x}\n")
    assert controls.osc("/a", (0.25,))
    assert perf.state.x == 0.25
    path = tmp_path / "b.yaml"
    path.write_text("bindings:\n  - {osc: /b, target: x}\n  - {cc: 7, target: y}\n")
    controls.use_mappings([load_mapping(path, KIT)])
    assert not controls.osc("/a", (0.75,))
    assert perf.state.x == 0.25
    assert controls.osc("/b", (0.75,)) and controls.midi(None, [0xB0, 7, 127])
    assert (perf.state.x, perf.state.y) == (0.75, 1.0)
    assert controls.ports == [None]

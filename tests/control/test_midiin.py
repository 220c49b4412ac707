"""Controller MIDI through a private JACK server: a virtual "nanoKONTROL2" made with
python-rtmidi drives the state; system messages are ignored; the port is waited for,
lost and found again."""

import asyncio

import pytest
from performer import SETTLE, make_performance, until

from rvaed.control.controls import Controls
from rvaed.control.mapfile import load_mapping
from rvaed.control.midiin import MidiControlInput
from rvaed.core.kit import load_kit
from rvaed.engine import midiapi


def controller():
    """A JACK MIDI source that looks like a Korg nanoKONTROL2 to port matching."""
    port = midiapi.open_client("jack", "output", "fake-korg")
    port.open_virtual_port("nanoKONTROL2 MIDI 1")
    return port




@pytest.mark.usefixtures("jack_server")
def test_controller_midi_through_jack_with_hot_plug(model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        controls = Controls(perf, [load_mapping("nanokontrol2", load_kit())])
        midi_in = MidiControlInput(controls, api="jack", poll=0.05)
        await midi_in.start()
        assert midi_in.connected == []  # waiting for the device
        device = controller()
        await until(lambda: midi_in.connected)
        await asyncio.sleep(SETTLE)
        device.send_message([0xB0, 0, 64])  # slider 1 meets x (soft takeover) ...
        device.send_message([0xB0, 0, 127])  # ... and moves it
        device.send_message([0xB0, 48, 127])  # M1 toggles the kick's mute
        device.send_message([0xB0, 48, 0])
        await until(lambda: perf.state.x == 1.0 and perf.state.mutes == {0})
        assert perf.pattern == perf.decoder.decode_xy(1.0, perf.state.y)
        assert perf.latency.count >= 1

        received = midi_in.received
        for message in ([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7], [0xF8], [0xFE], [0xFA]):
            device.send_message(message)
        device.send_message([0xB0, 1, 0])  # slider 2 (y) far from 0.5: soft takeover waits
        device.send_message([0xB0, 1, 63])
        await until(lambda: perf.state.y == pytest.approx(63 / 127))
        assert midi_in.received == received + 2  # the system messages never arrived
        assert midi_in.rejected.count == 0

        device.close_port()
        device.delete()
        await until(lambda: not midi_in.connected)
        device = controller()
        await until(lambda: midi_in.connected)
        await asyncio.sleep(SETTLE)
        device.send_message([0xB0, 0, 120])
        await until(lambda: perf.state.x == pytest.approx(120 / 127))
        device.close_port()
        device.delete()
        await midi_in.close()
        await perf.stop()
    asyncio.run(scenario())


@pytest.mark.usefixtures("jack_server")
def test_new_mappings_open_their_ports_and_close_the_ones_no_longer_named(tmp_path,
                                                                          model_dir):
    async def scenario():
        perf = make_performance(model_dir)
        await perf.start()
        korg = tmp_path / "korg.yaml"
        korg.write_text("port: nanoKONTROL2\nbindings:\n  - {cc: 0, target: x}\n")
        other = tmp_path / "other.yaml"
        other.write_text("port: fake-pad\nbindings:\n  - {cc: 0, target: y}\n")
        controls = Controls(perf, [load_mapping(korg, load_kit())])
        midi_in = MidiControlInput(controls, api="jack", poll=0.05)
        device, pad = controller(), midiapi.open_client("jack", "output", "fake-pad")
        pad.open_virtual_port("fake-pad out")
        await midi_in.start()
        await until(lambda: len(midi_in.connected) == 1)
        controls.use_mappings([load_mapping(other, load_kit())])
        midi_in.follow_mappings()
        assert [p.spec for p in midi_in._ports] == ["fake-pad"]
        await until(lambda: midi_in.connected == ["fake-pad:fake-pad out"])
        await asyncio.sleep(SETTLE)
        device.send_message([0xB0, 0, 127])  # the old port is closed: nothing arrives
        pad.send_message([0xB0, 0, 127])
        await until(lambda: perf.state.y == 1.0)
        assert perf.state.x == 0.5 and midi_in.received == 1
        for port in (device, pad):
            port.close_port()
            port.delete()
        await midi_in.close()
        await perf.stop()
    asyncio.run(scenario())

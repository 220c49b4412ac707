"""MIDI ports through JACK: API names, port matching, the virtual port, waiting for a port,
and `rvaed ports`. (A port vanishing mid-note and coming back: tests/engine/test_sequencer.py.)"""

import logging
import time

import pytest
from jackmidi import Receiver

from rvaed.cli import main
from rvaed.core.errors import RvaedError
from rvaed.engine import midiapi
from rvaed.engine.midiout import Output


def test_api_names_and_port_matching():
    import rtmidi

    assert midiapi.api("JACK") == rtmidi.API_UNIX_JACK
    assert midiapi.api("auto") == rtmidi.API_UNSPECIFIED
    with pytest.raises(RvaedError, match="unknown MIDI API 'oss': expected one of auto, alsa"):
        midiapi.api("oss")
    ports = ["Midi Through:0", "TR-8S:TR-8S MIDI 1", "rvaed:out"]
    assert midiapi.match_port(ports, "tr-8s") == 1
    assert midiapi.match_port(ports, "volca") is None


def wait_connected(output: Output, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not output.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    return output.connected


def test_the_virtual_port_opens_under_its_configured_name(jack_server):
    output = Output(api="jack", name="drums-a")
    output.open()
    receiver = Receiver("rx-virtual")
    try:
        assert wait_connected(output) and output.name == "drums-a"
        receiver.connect_from("drums-a:drums-a")
        for _ in range(50):  # JACK makes a new connection live within a few periods
            assert output.send((0x99, 36, 100))
            if receiver.wait_for(lambda m: (0x99, 36, 100) in [x[1] for x in m], 0.1):
                break
        assert (0x99, 36, 100) in [x[1] for x in receiver.messages]
    finally:
        output.close()
        receiver.close()


def test_a_missing_port_is_waited_for_then_connected(jack_server, caplog):
    caplog.set_level(logging.WARNING, logger="rvaed.engine.midiout")
    output = Output("late-box", api="jack", poll=0.05)
    output.open()
    receiver = None
    try:
        deadline = time.monotonic() + 10
        while "no port matching 'late-box' yet" not in caplog.text:
            assert time.monotonic() < deadline, "no line saying the port is waited for"
            time.sleep(0.02)
        assert not output.connected
        assert not output.send((0x99, 36, 100))  # dropped, not blocked, while away
        receiver = Receiver("late-box")
        assert wait_connected(output) and "connected to 'late-box:late-box'" in caplog.text
        time.sleep(0.05)  # JACK makes a new connection live within a few periods
        assert output.send((0x99, 38, 90))
        assert receiver.wait_for(lambda m: (0x99, 38, 90) in [x[1] for x in m])
    finally:
        output.close()
        if receiver is not None:
            receiver.close()


def test_rvaed_ports_lists_jack_ports(jack_server, capsys):
    receiver = Receiver("listed-box")
    try:
        assert main(["ports", "--api", "jack"]) == 0
    finally:
        receiver.close()
    out = capsys.readouterr().out
    assert "MIDI outputs (rvaed sends to):" in out
    assert "listed-box:listed-box" in out.split("MIDI inputs")[0]


def reopened(output: Output, reason: str) -> None:
    """Ask ``output`` to reopen; wait until a new sender has opened the port."""
    first = output._sender
    output.reopen(reason)
    deadline = time.monotonic() + 15
    while output._sender in (first, None) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert output.connected and output._sender is not first


def test_reopen_abandons_the_sender_and_opens_the_port_again(jack_server, caplog):
    """The hook a backend-specific watcher calls (e.g. an ALSA subscription removed). A sender
    lost before it opened (a first start slower than STARTING, as in an emulated guest) begins
    an outage logged once; once a port has opened, the next loss is a new one, logged."""
    caplog.set_level(logging.WARNING, logger="rvaed.engine.midiout")
    receiver = Receiver("rx-reopen")
    output = Output("rx-reopen", api="jack", poll=0.05)
    output.open()
    try:
        output.reopen("lost before it opened")
        assert wait_connected(output, 15)
        reopened(output, "subscription removed")
        assert "output rx-reopen: lost (lost before it opened)" in caplog.text
        assert "output rx-reopen: lost (subscription removed)" in caplog.text
        assert "reconnected to 'rx-reopen:rx-reopen'" in caplog.text
    finally:
        output.close()
        receiver.close()

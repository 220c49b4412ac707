"""How late a JACK MIDI destination sounds: its playback latency, read from JACK itself.

A MIDI note sent to a JACK synth is rendered into the next period and leaves the sound card one
or more periods later; JACK knows how many frames (the latency each client reports, summed along
the connections to the physical playback ports: `jack_lsp -l` shows it). Ableton's LinkHut adds
its output latency to the time it schedules for, so a JACK client that does not lands about one
period behind it (Link's test plan, AUDIOENGINE-1, allows 3 ms). An output compensates by
sending that much earlier, on top of its configured `latency_ms`.

python-rtmidi does not expose port latencies, so this asks libjack directly (ctypes), through a
short-lived client of its own that never starts a server. No JACK, no such port, or a port with
nothing behind it: 0.
"""

import ctypes
import ctypes.util
import functools

import rtmidi

NO_START_SERVER = 0x01  # JackNoStartServer
PLAYBACK_LATENCY = 1  # JackPlaybackLatency


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


@functools.cache
def _libjack() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("jack")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    lib.jack_port_by_name.restype = ctypes.c_void_p
    lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                                ctypes.POINTER(_Range)]
    lib.jack_get_sample_rate.restype = ctypes.c_uint32
    lib.jack_get_sample_rate.argtypes = [ctypes.c_void_p]
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    return lib


def playback_latency(port: str) -> float:
    """Seconds from a MIDI message reaching JACK port ``port`` to its sound leaving the
    machine (the port's largest playback latency); 0 when JACK cannot tell."""
    lib = _libjack()
    if lib is None:
        return 0.0
    client = lib.jack_client_open(b"rvaed-latency", NO_START_SERVER, None)
    if not client:
        return 0.0
    try:
        handle = lib.jack_port_by_name(client, port.encode())
        if not handle:
            return 0.0
        frames = _Range()
        lib.jack_port_get_latency_range(handle, PLAYBACK_LATENCY, ctypes.byref(frames))
        return frames.max / max(lib.jack_get_sample_rate(client), 1)
    finally:
        lib.jack_client_close(client)


def port_latency(midi_out, port: str) -> float:
    """`playback_latency` of ``port`` when ``midi_out`` (an open rtmidi.MidiOut) talks to JACK;
    0 for any other MIDI API."""
    if midi_out.get_current_api() != rtmidi.API_UNIX_JACK:
        return 0.0
    return playback_latency(port)

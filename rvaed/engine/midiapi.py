"""MIDI system APIs by name, and finding ports by a part of their name.

Shared by MIDI output (the engine) and MIDI input (controllers), so that both accept the same
``--api`` names and the same port specs. rtmidi is imported lazily: `rvaed --help` stays fast.
"""

from rvaed.core.errors import RvaedError

API_NAMES = ("auto", "alsa", "jack", "coremidi", "winmm")
_RTMIDI_CONSTANTS = {
    "auto": "API_UNSPECIFIED",
    "alsa": "API_LINUX_ALSA",
    "jack": "API_UNIX_JACK",
    "coremidi": "API_MACOSX_CORE",
    "winmm": "API_WINDOWS_MM",
}


def api(name: str) -> int:
    """The rtmidi API constant for ``name``; an API not compiled into rtmidi is an error."""
    import rtmidi

    key = name.lower()
    if key not in _RTMIDI_CONSTANTS:
        raise RvaedError(f"unknown MIDI API {name!r}: expected one of {', '.join(API_NAMES)}")
    constant = getattr(rtmidi, _RTMIDI_CONSTANTS[key])
    if key != "auto" and constant not in rtmidi.get_compiled_api():
        compiled = ", ".join(rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api())
        raise RvaedError(f"MIDI API {name!r} is not available here (compiled in: {compiled})")
    return constant


def list_ports(api_name: str = "auto", direction: str = "output") -> list[str]:
    """Names of the MIDI ports of ``direction`` ("output" or "input") visible now."""
    return list(open_client(api_name, direction, "rvaed-ports").get_ports())


def open_client(api_name: str, direction: str, client_name: str = "rvaed"):
    """A fresh rtmidi MidiOut/MidiIn on ``api_name``; failure to reach the system is an error.

    ``auto`` takes the first compiled-in API that opens: ALSA is compiled in on Linux but has
    no sequencer without /dev/snd, where JACK may still be running.
    """
    import rtmidi

    cls = {"output": rtmidi.MidiOut, "input": rtmidi.MidiIn}[direction]
    candidates = rtmidi.get_compiled_api() if api(api_name) == rtmidi.API_UNSPECIFIED \
        else [api(api_name)]
    problems = []
    for candidate in candidates:
        try:
            return cls(candidate, name=client_name)
        except rtmidi.SystemError as exc:
            problems.append(f"{rtmidi.get_api_name(candidate)}: {exc}")
    raise RvaedError(f"MIDI API {api_name!r}: cannot open a client ({'; '.join(problems)})")


def match_port(ports: list[str], spec: str) -> int | None:
    """Index of the first port whose name contains ``spec`` (case-insensitive), else None."""
    wanted = spec.lower()
    for index, port in enumerate(ports):
        if wanted in port.lower():
            return index
    return None

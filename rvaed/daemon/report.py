"""What the daemon tells the log: one line per part at start, and a line on every change of
tempo, transport, model and outputs, worded here in one place so that the log reads the same
everywhere and the service only says when.

At start: the MIDI API, every output (its port and drum machine), Link (on/off, peers, tempo,
quantum), OSC (address, port, the controller maps loaded), the model (name, what it was
trained on, where the pad starts) and the inbox (where to drop files, whether this install can
train). ``-v`` adds the detail behind them (config file, folders, decoder weights, the hits the
first pattern plays).
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from rvaed.control.controls import Controls
from rvaed.control.mapfile import Mapping
from rvaed.control.osc import OscServer
from rvaed.control.performance import Performance
from rvaed.core.state import PerformanceState
from rvaed.daemon.config import DaemonConfig, LinkConfig, MidiOutput
from rvaed.engine.bridge import LinkBridge
from rvaed.engine.clock import Clock
from rvaed.engine.midiclockin import MidiClockIn
from rvaed.engine.midiout import VIRTUAL, Output
from rvaed.engine.sequencer import Sequencer
from rvaed.model.runtime import Decoder
from rvaed.training.job import training_unavailable

log = logging.getLogger("rvaed")

FOLLOW_EVERY = 0.5  # seconds between looks at tempo and transport
HIT = 0.5  # the onset probability counted as a hit in the debug line of the first pattern


class Daemon(Protocol):
    """The parts of the running daemon (rvaed.daemon.service) that the log speaks of."""

    config: DaemonConfig
    model: Path
    clock: Clock | None
    sequencer: Sequencer | None
    performance: Performance | None
    controls: Controls | None
    osc: OscServer | None


def midi_api(api: str) -> str:
    """The MIDI system line."""
    if api != "auto":
        return f"MIDI: API {api} (midi.api)"
    return "MIDI: API auto: the first MIDI system that opens (set midi.api to choose one)"


def output_line(number: int, spec: MidiOutput, output: Output) -> str:
    """One output: which port, which drum machine, how it is timed."""
    if output.spec == VIRTUAL:
        port = f"virtual port {output.name!r} (other programs connect to it)"
    elif output.connected:
        port = f"port {output.name!r} (matches {spec.port!r})"
    else:
        port = f"port matching {spec.port!r}: not there yet, waiting for it"
    extras = [f"latency {spec.latency_ms:g} ms"] if spec.latency_ms else []
    extras += ["sends MIDI clock"] if spec.clock_out else []
    return (f"MIDI out {number}: {port}, drum machine {spec.drum_machine}"
            + "".join(f", {extra}" for extra in extras))


def output_lines(specs: Sequence[MidiOutput], outputs: Sequence[Output]) -> list[str]:
    return [output_line(n, spec, output)
            for n, (spec, output) in enumerate(zip(specs, outputs, strict=False), 1)]


def link_line(config: LinkConfig, clock: Clock) -> str:
    """Link on or off, the clock the music follows, its tempo and quantum."""
    timing = f"{clock.tempo:.1f} BPM, quantum {clock.quantum:g}"
    master = isinstance(clock, MidiClockIn | LinkBridge)
    if clock.link and master:
        return (f"Link: on, {clock.peers} peer(s), led by the MIDI clock rvaed follows "
                f"(the session takes its tempo, beat and start/stop), {timing}")
    if clock.link:
        return (f"Link: on, {clock.peers} peer(s), {timing} (joins any Link session on the "
                "network, Ableton Live for one)")
    source = "MIDI clock in" if master else "internal clock"
    if config.enabled and not isinstance(clock, LinkBridge):
        return f"Link: off: it could not start (see above); {source}, {timing}"
    return f"Link: off (link.enabled: false); {source}, {timing}"


def mapping_summary(mapping: Mapping) -> str:
    """A controller map in a few words: its name, what it listens to, its bindings."""
    osc = any(b.source == "osc" for b in mapping.bindings)
    where = "OSC" if osc else f"MIDI {mapping.port!r}" if mapping.port else "MIDI, any input"
    return f"{mapping.name} ({where}, {len(mapping.bindings)} bindings)"


def osc_line(config: DaemonConfig, port: int | None, mappings: Iterable[Mapping]) -> str:
    """Where OSC listens, who may send file commands, and the controller maps loaded."""
    maps = ", ".join(map(mapping_summary, mappings)) or "none"
    if port is None:
        state = "off (osc.enabled: false)" if not config.osc.enabled else "off: see above"
        return f"OSC: {state}; controller maps: {maps}"
    return (f"OSC: listening on {config.osc.bind}:{port}, file commands from "
            f"{', '.join(config.osc.allow)}; controller maps: {maps}")


def model_line(path: Path, decoder: Decoder, state: PerformanceState | None = None) -> str:
    """Which model plays, what it learned from, and where the pad is."""
    manifest = decoder.manifest
    data, grid = manifest.training.get("data", {}), manifest.grid
    learned = (f"trained on {data['windows']} {grid.bars}-bar {grid.meter} windows of "
               f"{data['files']} file(s)"
               if "windows" in data and "files" in data else "no record of its training data")
    where = f"; pad at x {state.x:.3f} y {state.y:.3f}" if state is not None else ""
    return (f"model: {manifest.name} ({path}), {learned}, kit {manifest.kit.name}, "
            f"{manifest.kit.size} voices x {manifest.grid.steps} steps{where}")


def inbox_line(folder: Path, settle_seconds: float) -> str:
    """Where to drop files to train, and whether this install can."""
    hint = training_unavailable()
    if hint:
        return f"inbox: {folder}: {hint}"
    return (f"inbox: {folder}: drop MIDI files or folders there; training starts "
            f"{settle_seconds:g} s after the last one arrives")


def first_hits(decoder: Decoder, state: PerformanceState) -> str:
    """Debug detail: hits per voice of the pattern under the pad (at threshold HIT)."""
    onsets = decoder.decode_xy(state.x, state.y).onsets > HIT
    counts = [f"{name} {count}" for name, count
              in zip(decoder.kit.names, onsets.sum(axis=1).tolist(), strict=True) if count]
    return ", ".join(counts) or "silence"


def started(daemon: Daemon) -> None:
    """The start-up lines, one per part (the service calls this once everything runs)."""
    config = daemon.config
    assert daemon.performance is not None and daemon.clock is not None  # started
    assert daemon.sequencer is not None and daemon.controls is not None  # started
    performance = daemon.performance
    log.debug("config: %s; state %s, models %s, captures %s",
              config.source or "built-in defaults", config.dirs.state, config.dirs.models,
              config.dirs.captures)
    log.info(midi_api(config.midi.api))
    for line in output_lines(config.midi.outputs, daemon.sequencer.outputs):
        log.info(line)
    log.info(link_line(config.link, daemon.clock))
    log.info(osc_line(config, daemon.osc.port if daemon.osc else None,
                      daemon.controls.mappings))
    log.info(model_line(daemon.model, performance.decoder, performance.state))
    log.debug("model: %s decoder; first pattern: %s", performance.decoder.weights,
              first_hits(performance.decoder, performance.state))
    log.info(inbox_line(config.dirs.inbox, config.training.settle_seconds))
    log.info(playing_line(daemon.clock, performance.state.playing, daemon.model.name,
                          config.link.join_wait))


def playing_line(clock: Clock, wanted: bool, model: str, join_wait: float) -> str:
    """What plays now; with Link still joining, what will play once it has joined."""
    joining = getattr(clock, "joining", False)
    state = "playing" if clock.playing or (wanted and joining) else "stopped"
    line = f"{state} {model} at {clock.tempo:.1f} BPM"
    if joining and wanted:
        line += (f" once Link has joined a session or found none (at most {join_wait:g} s; "
                 "with start/stop sync a stopped session keeps it stopped)")
    return line


def outputs_changed(daemon: Daemon) -> None:
    """After a reload swapped the outputs: the new list."""
    assert daemon.sequencer is not None  # started
    for line in output_lines(daemon.config.midi.outputs, daemon.sequencer.outputs):
        log.info("now %s", line)


def model_changed(daemon: Daemon) -> None:
    assert daemon.performance is not None  # started
    log.info("now playing %s", model_line(daemon.model, daemon.performance.decoder))


async def follow(clock: Clock) -> None:
    """A line for every settled change of tempo (a tempo being dragged is logged once it
    rests) and for every start and stop of the transport."""
    tempo, playing = round(clock.tempo, 2), clock.playing
    moving: float | None = None
    while True:
        await asyncio.sleep(FOLLOW_EVERY)
        now = round(clock.tempo, 2)
        if now != tempo and now == moving:
            log.info("tempo: %.2f BPM (was %.2f)", now, tempo)
            tempo = now
        moving = now
        if clock.playing != playing:
            playing = clock.playing
            log.info("transport: %s", "playing" if playing else "stopped")

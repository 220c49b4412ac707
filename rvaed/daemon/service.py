"""The daemon behind `rvaed run`: one asyncio loop that ties model, engine and controls together.

What runs where:
- the sequencer thread owns MIDI output and plays the installed schedule on the clock;
- this loop owns everything else: the performance state and its decodes, OSC, controller
  MIDI, the training supervisor, the inbox, persistence and systemd notification;
- training runs in its own niced process (rvaed.training.job); torch is never imported here.

Nothing a musician or the network does stops the music: a missing port is waited for, a
failed model load or training keeps the current model playing, a broken config on SIGHUP keeps
the running one. SIGHUP applies the file's every section to the parts that own it (mappings,
controller inputs, file policy, training, inbox, outputs, model, log level); a key that needs a
restart keeps its running value and is named in the log. SIGTERM stops cleanly: every note
gets its note-off, the state is saved.
"""

import asyncio
import contextlib
import ctypes
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvaed.control.controls import Controls
from rvaed.control.mapfile import load_mappings
from rvaed.control.midiin import follow_inputs
from rvaed.control.osc import OscServer
from rvaed.control.performance import Performance
from rvaed.core.drummachine import DrumMachine, load_drum_machine
from rvaed.core.errors import RvaedError
from rvaed.core.pattern import Grid
from rvaed.core.secret import SessionSecret
from rvaed.daemon import report
from rvaed.daemon.config import DaemonConfig, changes, keep_running, load_config
from rvaed.daemon.inbox import Batch, Inbox
from rvaed.daemon.localsocket import LocalSocket
from rvaed.daemon.persist import Saved, StateStore
from rvaed.daemon.policy import FilePolicy
from rvaed.daemon.supervisor import Trainer
from rvaed.daemon.systemd import Notifier
from rvaed.daemon.web import start_web
from rvaed.engine.alsaseq import SubscriptionWatcher
from rvaed.engine.bridge import LinkBridge
from rvaed.engine.clock import Clock, InternalClock
from rvaed.engine.linkclock import LinkClock
from rvaed.engine.midiclockin import MidiClockIn
from rvaed.engine.midiout import VIRTUAL, Output, carry_over
from rvaed.engine.sendproc import BUCKETS, lateness_figures
from rvaed.engine.sequencer import Sequencer
from rvaed.model.library import ModelLibrary
from rvaed.model.modeldir import model_path, starter_model
from rvaed.model.runtime import Decoder
from rvaed.tools.automation import Automation, Automator
from rvaed.tools.capture import Capture
from rvaed.tools.groove import GrooveInput

if TYPE_CHECKING:
    from rvaed.control.web.server import WebServer

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SAVE_EVERY = 2.0  # seconds between checks for unsaved state changes
SWAP_LEAD_STEPS = 1.5  # a new model is installed this many steps before the loop boundary
TIMING_EVERY = 60.0  # seconds between log lines of the outputs' send-time errors


class Daemon:
    """Builds every part from a `DaemonConfig`, runs until SIGTERM/SIGINT, then silences all."""

    def __init__(self, config: DaemonConfig, config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = Notifier()
        self.policy = FilePolicy.from_config(config)
        self.library = ModelLibrary(config.dirs.models)
        self.store = StateStore(config.dirs.state / STATE_FILE)
        self.model: Path = starter_model()
        self.clock: Clock | None = None
        self.sequencer: Sequencer | None = None
        self.subscriptions: SubscriptionWatcher | None = None  # ALSA: restores those cut
        self.performance: Performance | None = None
        self.trainer: Trainer | None = None
        self.osc: OscServer | None = None
        # the web page's key is the secret OSC file commands carry (rvaed.daemon.policy)
        self.secret = (SessionSecret(key=self.policy.secret) if self.policy.secret
                       else SessionSecret())
        self.web: WebServer | None = None  # the web page (rvaed.daemon.web), when on
        self.local: LocalSocket | None = None  # the CLI's socket
        self.training_watchers: list = []  # called with every training progress report
        self.controls: Controls | None = None
        self.inbox: Inbox | None = None
        self.controllers: list = []  # controller MIDI inputs, one per configured default port
        self.inputs: list = []  # the "find my groove" input
        self.tools: list = []  # automation and capture: closed on shutdown
        self._tasks: list[asyncio.Task] = []
        self._saved: dict | None = None
        self._bend_wanted: tuple[float, int] | None = None
        self._bender: asyncio.Task | None = None
        self._reloading = asyncio.Lock()  # two quick SIGHUPs apply one after the other

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Start, play until asked to stop, shut down cleanly (also on errors)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.shutdown()

    async def start(self) -> None:
        config = self.config
        for folder in config.dirs.all():
            folder.mkdir(parents=True, exist_ok=True)
        self.library.discard_scratch()
        saved = Saved.load(self.store)  # checked: nothing in it can stop the start
        decoder = self._first_decoder(saved.model)
        outputs = self._outputs(decoder, config)
        self.clock = self._clock(decoder.grid)
        late = config.midi.late_ms
        self.sequencer = Sequencer(self.clock, outputs, grid=decoder.grid,
                                   late=None if late is None else late / 1000)
        self.sequencer.start()
        self.subscriptions = SubscriptionWatcher(lambda: self.sequencer.outputs
                                                 if self.sequencer else [])
        self.subscriptions.start()
        self.performance = Performance(decoder, self.sequencer, _machine(outputs), self.clock,
                                       state=saved.state(decoder.kit.size,
                                                                   decoder.manifest.latent.default))
        await self.performance.start()
        self.performance.set("playing", saved.playing)
        await self._start_tools(saved.automation())
        self.trainer = Trainer(self.library, config.training, config.kit,
                               on_model=self._trained, on_progress=self._training_progress)
        self.controls = controls = Controls(self.performance, self._mappings(decoder))
        await self._start_osc(controls)
        if (web := await start_web(self)) is not None:
            self.web = web
            self.tools.append(web)  # closed on shutdown with the tools
        self.local = await LocalSocket.open(self)
        await self._start_inputs(controls)
        self.inbox = self._inbox()
        self._tasks += [asyncio.create_task(self.inbox.run(), name="inbox"),
                        asyncio.create_task(self._save_changes(), name="persist"),
                        asyncio.create_task(self._log_timing(), name="timing"),
                        asyncio.create_task(report.follow(self.clock), name="report"),
                        asyncio.create_task(self.notifier.keep_alive(self.sequencer_alive),
                                            name="watchdog")]
        self.notifier.ready(f"playing {self.model.name}")
        report.started(self)

    async def shutdown(self) -> None:
        """Every note off, every part closed, the state saved; safe after a partial start."""
        self.notifier.stopping()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.performance is not None:
            await self.performance.stop()
        if self.subscriptions is not None:
            self.subscriptions.close()
        if self.sequencer is not None:
            self.sequencer.stop()
            offs, _, ons = self.sequencer.timing.sent
            _, ticks, late = self.sequencer.timing.dropped
            waited = sum(output.dropped_by_sender() for output in self.sequencer.outputs)
            log.info("MIDI out: %d note-ons and %d note-offs sent; dropped too late: %d "
                     "note-ons, %d clock ticks, %d more after waiting to be sent", ons, offs,
                     late, ticks, waited)
        if self.performance is not None:  # saved before a training may take its seconds
            await asyncio.to_thread(self.store.save_last, self._snapshot())
        for part in [*self.controllers, *self.inputs, *self.tools, self.osc, self.local,
                     self.trainer]:
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.close()
        if self.clock is not None:
            self.clock.close()  # Link leaves the session
        self.notifier.close()
        log.info("rvaed: stopped")

    def sequencer_alive(self) -> bool:
        return self.sequencer is not None and self.sequencer.running

    async def reload(self) -> None:
        """SIGHUP: read the config and mappings again and apply them without stopping the
        music; anything that fails to load refuses the whole file and the running one stays."""
        if self.inbox is None or self.performance is None:
            log.warning("reload ignored: rvaed is still starting (send SIGHUP again)")
            return
        async with self._reloading:
            self.notifier.reloading()
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
                mappings = load_mappings(config.mappings, self.performance.decoder.kit)
                outputs = self._outputs(self.performance.decoder, config)
            except RvaedError as exc:
                log.error("reload refused, the running configuration stays: %s", exc)
            else:
                await self._apply(config, mappings, outputs)
            self.notifier.ready(f"playing {self.model.name}")

    async def _apply(self, config: DaemonConfig, mappings: list, outputs: list[Output]) -> None:
        """Hand every part its section of ``config``; log what changed in one line."""
        assert self.trainer is not None and self.inbox is not None  # started
        assert self.controls is not None  # started
        changed = changes(self.config, config)
        for change in (c for c in changed if c.restart):
            log.warning("reload: %s needs a restart of rvaed; it stays %s until then",
                        change, change.old)
        old, self.config = self.config, keep_running(self.config, config)
        if old.logging != self.config.logging:
            logging.getLogger().setLevel(self.config.logging.level.upper())
        self.policy.update(self.config)
        self.capture.per_minute = self.config.limits.captures_per_minute
        self.capture.quota_bytes = self.config.limits.captures_bytes
        self.trainer.update(self.config.training, self.config.kit)
        self.inbox.update(self.config.dirs.inbox, self.config.training.settle_seconds)
        done = [str(c) for c in changed if not c.restart]
        if mappings != self.controls.mappings:
            self.controls.use_mappings(mappings)
            done += [] if old.mappings != config.mappings else ["mapping files"]
        if old.link != self.config.link:
            self._reload_link()
        await self._reload_inputs(old)
        await self._reload_outputs(outputs)
        if old.midi.outputs != self.config.midi.outputs:
            report.outputs_changed(self)
        if old.model != self.config.model and (model := self._configured_model()):
            asyncio.get_running_loop().create_task(self.switch_model(model))
        log.info("reloaded %s: %s", config.source or "built-in defaults",
                 ", ".join(done) or "nothing changed")

    async def _reload_inputs(self, old: DaemonConfig) -> None:
        """Controller inputs follow the new mappings and ports; the groove input its port."""
        assert self.controls is not None  # started
        midi = self.config.midi
        self.controllers = await follow_inputs(self.controllers, self.controls, midi.inputs,
                                               midi.api)
        if midi.groove_input != old.midi.groove_input:
            for part in self.inputs:
                await part.close()
            self.inputs = []
            await self._start_groove_input()

    async def _reload_outputs(self, outputs: list[Output]) -> None:
        """Open the new outputs, retune the kept ones, swap them in, close the ones gone."""
        assert self.sequencer is not None and self.performance is not None  # started
        outputs = await asyncio.to_thread(carry_over, self.sequencer.outputs, outputs)
        try:
            removed = await asyncio.to_thread(self.sequencer.use_outputs, outputs)
        except RuntimeError as exc:  # the sequencer thread is gone (the watchdog says so)
            log.error("outputs not changed: %s", exc)
            return
        if _machine(outputs) != self.performance.drum_machine:
            self.performance.use_drum_machine(_machine(outputs))
        for output in removed:
            await asyncio.to_thread(output.close)

    # -- building the parts ----------------------------------------------------------------

    def _first_decoder(self, saved_model: Path | None) -> Decoder:
        """The remembered model, else the configured one, else the starter model."""
        candidates = [self.library.last(), self._configured_model(), starter_model()]
        if saved_model:
            candidates.insert(0, saved_model)
        for candidate in candidates:
            if candidate is None:
                continue
            try:
                decoder = Decoder(candidate)
            except RvaedError as exc:
                log.error("cannot load model %s, trying the next one: %s", candidate, exc)
                continue
            self.model = Path(candidate)
            return decoder
        raise RvaedError("no model could be loaded, not even the shipped starter model")

    def _configured_model(self) -> Path | None:
        name = self.config.model
        if name == "starter" or Path(name).is_dir():
            return model_path(name)
        try:
            return self.library.resolve(name)
        except RvaedError as exc:
            log.error("config model: %s", exc)
            return None

    def _quantum(self, grid: Grid) -> float:
        """link.quantum, or the model's bar when it is not set."""
        quantum = self.config.link.quantum
        return grid.beats_per_bar if quantum is None else quantum

    def _clock(self, grid: Grid) -> Clock:
        link, quantum = self.config.link, self._quantum(grid)
        if self.config.midi.clock_input is not None:
            return self._midi_clock(quantum)
        try:  # one Link object with Link on or off: switching it at runtime moves no beat
            return LinkClock(quantum=quantum, enabled=link.enabled,
                             start_stop_sync=link.start_stop_sync, join_wait=link.join_wait)
        except Exception as exc:  # no binding for this platform: play on the internal clock
            log.error("Ableton Link unavailable (%s): using the internal clock", exc)
            return InternalClock(quantum=quantum)

    def _midi_clock(self, quantum: float) -> Clock:
        """The clock following MIDI clock on midi.clock_input (its port must be there),
        bridged into Link (on as link.enabled says) where Link is available."""
        clock = MidiClockIn(quantum=quantum)
        try:
            clock.listen(self.config.midi.clock_input or "", self.config.midi.api)
        except (ValueError, RvaedError) as exc:
            log.error("midi.clock_input: %s; using the internal clock", exc)
            return InternalClock(quantum=quantum)
        log.info("clock: following MIDI clock on %s", self.config.midi.clock_input)
        link = self.config.link
        try:
            session = LinkClock(quantum=quantum, enabled=link.enabled,
                                start_stop_sync=link.start_stop_sync, join_wait=link.join_wait)
        except Exception as exc:  # no binding for this platform: no bridge
            log.error("Ableton Link unavailable (%s): MIDI clock only", exc)
            return clock
        return LinkBridge(clock, session)

    def _reload_link(self) -> None:
        """SIGHUP: Link on or off, quantum, start/stop sync, as the config now says."""
        assert self.performance is not None and self.clock is not None  # started
        link = self.config.link
        self.performance.set("link", link.enabled)
        if isinstance(self.clock, LinkClock | InternalClock):
            self.clock.set_quantum(self._quantum(self.performance.grid))
        session = self.clock.session if isinstance(self.clock, LinkBridge) else self.clock
        if isinstance(session, LinkClock):
            session.set_start_stop_sync(link.start_stop_sync)

    def _outputs(self, decoder: Decoder, config: DaemonConfig) -> list[Output]:
        """One output per configured MIDI output, each with its drum machine."""
        outputs = []
        for spec in config.midi.outputs:
            machine = load_drum_machine(spec.drum_machine, decoder.kit)
            outputs.append(Output(VIRTUAL if spec.virtual else spec.port, machine,
                                  latency_ms=spec.latency_ms, clock_out=spec.clock_out,
                                  api=self.config.midi.api, name=spec.port))
        return outputs

    def _mappings(self, decoder: Decoder) -> list:
        try:
            return load_mappings(self.config.mappings, decoder.kit)
        except RvaedError as exc:
            log.error("mappings not loaded, controllers are off until fixed (SIGHUP): %s", exc)
            return []

    async def _start_osc(self, controls: Controls) -> None:
        osc = self.config.osc
        if not osc.enabled:
            return
        assert self.performance is not None  # started
        server = OscServer(self.performance, controls, host=osc.bind, port=osc.port,
                           model_name=self.model.name)
        try:
            await server.start()
        except RvaedError as exc:
            log.error("%s: OSC is off", exc)
            return
        self.osc = server
        from rvaed.daemon import routes

        routes.serve(self, server)

    async def _start_inputs(self, controls: Controls) -> None:
        midi = self.config.midi
        self.controllers = await follow_inputs([], controls, midi.inputs, midi.api)
        await self._start_groove_input()

    async def _start_groove_input(self) -> None:
        midi = self.config.midi
        assert self.performance is not None  # started
        if midi.groove_input:
            part = GrooveInput(self.performance, midi.groove_input, api=midi.api)
            await part.start()
            self.inputs.append(part)

    async def _start_tools(self, saved_automation: Automation | None) -> None:
        """Latent automation (restored from the state file) and capture."""
        assert self.performance is not None  # started
        automator = Automator(self.performance)
        if saved_automation:
            automator.restore(saved_automation)
        limits = self.config.limits
        capture = Capture(self.performance, self.config.dirs.captures,
                          per_minute=limits.captures_per_minute,
                          quota_bytes=limits.captures_bytes)
        await capture.start()
        self.automator, self.capture = automator, capture
        self.tools += [automator, capture]

    def _inbox(self) -> Inbox:
        assert self.trainer is not None  # started
        return Inbox(self.config.dirs.inbox, self.config.training.settle_seconds, self.policy,
                     self._inbox_batch, blocked=self.trainer.blocked)

    # -- models and training ---------------------------------------------------------------

    def _inbox_batch(self, batch: Batch) -> bool:
        """Train on the inbox's files; False (they go back) when training cannot start."""
        return not batch.files or self.train(list(batch.files), name="inbox")

    def train(self, files: list[Path], name: str | None = None) -> bool:
        """Start training on ``files`` (already checked against the file policy); False
        when it cannot start."""
        assert self.trainer is not None  # started
        try:
            self.trainer.request(files, name)
        except RvaedError as exc:
            log.error("training not started: %s", exc)
            self._training_progress(0.0, f"refused: {exc}")
            return False
        return True

    def _training_progress(self, fraction: float, status: str) -> None:
        if self.osc is not None:
            self.osc.report_training(fraction, status)
        for watcher in list(self.training_watchers):
            watcher(fraction, status)
        self.notifier.status(f"playing {self.model.name}; training: {status}")

    def _trained(self, model: Path) -> None:
        asyncio.get_running_loop().create_task(self.switch_model(model))

    async def switch_model(self, model: Path) -> None:
        """Load ``model`` off the loop, then swap it in on the next loop boundary."""
        try:
            decoder = await asyncio.to_thread(Decoder, model)
            self._check_compatible(decoder)
        except RvaedError as exc:
            log.error("model %s not loaded, the current one keeps playing: %s", model, exc)
            return
        await asyncio.sleep(self._until_swap())
        assert self.performance is not None  # started
        self.performance.use_decoder(decoder)
        await asyncio.to_thread(_give_back_memory)
        self.model = Path(model)
        self.library.remember(self.model)
        if self.osc is not None:
            self.osc.model_name = self.model.name
        self.notifier.status(f"playing {self.model.name}")
        report.model_changed(self)

    def bend(self, amount: float, seed: int) -> None:
        """Play the current model with bent weights; under a flood only the newest request
        is applied once the one being built is done."""
        self._bend_wanted = (amount, seed)
        if self._bender is None or self._bender.done():
            self._bender = asyncio.get_running_loop().create_task(self._apply_bends())

    async def _apply_bends(self) -> None:
        assert self.performance is not None  # started
        while self._bend_wanted is not None:
            (amount, seed), self._bend_wanted = self._bend_wanted, None
            decoder = await asyncio.to_thread(self.performance.decoder.bent, amount, seed)
            self.performance.use_decoder(decoder)
            await asyncio.to_thread(_give_back_memory)
            log.info("bending %.2f (seed %d)", amount, seed)

    def _check_compatible(self, decoder: Decoder) -> None:
        assert self.performance is not None  # started
        current = self.performance.decoder
        if decoder.grid != current.grid or decoder.kit.names != current.kit.names:
            raise RvaedError(f"kit {decoder.kit.name} / {decoder.grid.steps} steps does not "
                             f"fit the running kit {current.kit.name} / {current.grid.steps} "
                             "steps: restart rvaed with this model")

    def _until_swap(self) -> float:
        """Seconds until just before the next loop boundary (0 when stopped)."""
        assert self.clock is not None and self.performance is not None  # started
        if not self.clock.playing:
            return 0.0
        grid = self.performance.grid
        now = self.clock.now()
        beat = self.clock.beat_at(now)
        boundary = (beat // grid.beats + 1) * grid.beats
        lead = SWAP_LEAD_STEPS / grid.steps_per_beat
        if boundary - lead <= beat:
            boundary += grid.beats
        return max(0.0, self.clock.time_at(boundary - lead) - now)

    async def _log_timing(self) -> None:
        """Every minute, how late the outputs' senders sent (actual - due) since the last."""
        assert self.sequencer is not None  # started
        before: dict[int, np.ndarray] = {}
        while True:
            await asyncio.sleep(TIMING_EVERY)
            now = {id(output): np.array(output.lateness(), dtype=np.int64)
                   for output in self.sequencer.outputs if output.connected}
            total = sum((_since(histogram, before.get(key)) for key, histogram in now.items()),
                        np.zeros(BUCKETS, dtype=np.int64))
            before = now
            figures = lateness_figures(total.tolist())
            if figures["messages"]:
                log.info("timing: %d messages, sent - due p50 %.3f p99 %.3f max %.3f ms, "
                         "%d over 1 ms", figures["messages"], figures["p50_ms"],
                         figures["p99_ms"], figures["max_ms"], figures["late"])

    # -- persistence -------------------------------------------------------------------------

    def _snapshot(self) -> dict:
        assert self.performance is not None  # started
        automation = self.automator.automation
        return {"model": str(self.model), "state": self.performance.state.to_dict(),
                "automation": automation.to_dict() if automation else None}

    async def _save_changes(self) -> None:
        """Save the state whenever it differs from what was last saved (and on exit)."""
        while True:
            await asyncio.sleep(SAVE_EVERY)
            snapshot = self._snapshot()
            if snapshot != self._saved:
                self._saved = snapshot
                self.store.save_soon(snapshot)


def _since(histogram: np.ndarray, before: np.ndarray | None) -> np.ndarray:
    """What a sender's histogram counted since ``before`` (all of it for a new sender)."""
    if before is None or (histogram < before).any():
        return histogram
    return histogram - before


def _machine(outputs: list[Output]) -> DrumMachine:
    """The first output's drum machine, the one the performance builds its schedule for (the
    daemon gives every output one)."""
    machine = outputs[0].drum_machine
    assert machine is not None  # made by `Daemon._outputs`
    return machine


def _give_back_memory() -> None:
    """After a model swap: glibc keeps the pages of the old onnxruntime sessions, and RSS
    grew with every swap (docs/decisions.md); trimming the heap keeps it flat. Run in a worker
    thread: ctypes lets go of the GIL, so the sequencer is not held up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)

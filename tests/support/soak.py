"""Soak run: the real `rvaed run` for N minutes under a gig's worth of abuse, then a report.

    python tests/support/soak.py [--minutes N (default 10)] [--json FILE] [--seed S]

What happens, all on this machine:
- a private JACK server (dummy driver) and, on it, the drum machine's MIDI input: a JACK port
  that the daemon plays to by name (``virtual: false``) and that is unplugged for a few seconds
  every half minute or so and plugged back (the daemon must notice, wait and reconnect);
- control movement over OSC/UDP from a separate process, as a phone would send it: x/y at
  50 messages a second with fader-sweep bursts of several hundred a second, threshold, swing,
  timing, mutes, presets, and a tempo change every 20-40 s;
- training requests one after another (MIDI files dropped into the inbox, or /rvaed/train on
  files taken earlier), short epochs so that each finishes and is swapped in, and switches
  between library models with /rvaed/model;
- the daemon's anonymous resident memory (RssAnon, see `rss_kb`) sampled every 5 s.

Then SIGTERM, and the report: RSS over time, timing error, note-on/note-off balance at the
receiver, model swaps, port reconnects and every daemon log line of level WARNING or above.
Exit status 1 on a stuck note (at the receiver, or note-ons the daemon sent without as many
note-offs), a crash (the daemon died, or exited non-zero), RSS growth above 10% after
warm-up, or a port return the daemon did not reconnect to.

Ableton Link is off (``link.enabled: false``): the soak then runs anywhere, without a network
namespace, and its tempo changes come from OSC alone.

Timing error is measured at the receiver on the MIDI clock the daemon sends (24 ticks a beat,
``clock_out: true``): those ticks lie on an exact grid at the known tempo, whereas notes are
deliberately off the grid (microtiming, swing). The error is each tick's arrival against the
ideal grid fitted to it (median phase per stretch of constant tempo), so it includes JACK's
period rounding (one period = 5.33 ms here) and the receiver's own wake-up.
"""

import argparse
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from jackmidi import Receiver
from rig import DaemonProcess, free_udp_port

from rvaed.benchmarks.harness import free_jack_name, start_jack, stop_jack
from rvaed.engine.clock import now
from rvaed.model.modeldir import starter_model

GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"
RSS_EVERY = 5.0         # seconds between samples of the daemon's resident memory
STEP = 0.25             # seconds between looks at the daemon, the port and training
MAX_GROWTH = 10.0       # percent of RSS growth after warm-up that fails the soak
WARMUP = 0.25           # fraction of the run left out of RSS growth (see rss_summary)
WARMUP_SWAPS = 4        # ... and the model swaps (see rss_summary)
LATE = 0.003            # a clock tick this much behind the grid counts as late (Link: 3 ms)
OFF_TEMPO = 0.002       # a stretch whose tick spacing is off the tempo by this fraction
TEMPO_SETTLE = 0.25     # seconds after a tempo message before ticks follow the new tempo
RECONNECT_SETTLE = 1.0  # seconds after plugging back in before ticks are timed again
EPOCHS = 8              # per training job: each takes seconds, so many are swapped in
JACK_PERIOD = 256       # frames at 48 kHz (5.33 ms)
TRAINING_TIMEOUT = 180.0  # seconds before asking again when a request led nowhere
TRAINING_OUTCOMES = ("training: model", "training failed", "training produced no usable model",
                     "training not started")
FIRST_TRAINING, TRAINING_GAP = 5.0, (20.0, 40.0)  # seconds: first request, then between
FIRST_SWITCH, SWITCH_GAP = 30.0, (25.0, 45.0)     # the same for /rvaed/model switches
STUCK_AFTER = 1.0       # seconds a note may sound (gate: 1/8 beat, 0.11 s at 70 BPM)
RECONNECT_WINDOW = 2.0  # seconds after plugging back in in which All Notes Off is the reconnect's
NOTE_ON, NOTE_OFF, CONTROL, CLOCK = 0x90, 0x80, 0xB0, 0xF8
ALL_NOTES_OFF = 123
LEVELS = ("WARNING", "ERROR", "CRITICAL")
SENT = re.compile(r"MIDI out: (\d+) note-ons and (\d+) note-offs sent")


# -- the drum machine's port, and the performer ------------------------------------------------

class ComingAndGoingPort:
    """The drum machine's MIDI input (a JACK port named ``name``) that can be unplugged."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outages: list[list[float]] = []  # [unplugged, plugged back] host times
        self._done: list[tuple[float, tuple[int, ...]]] = []
        self._rx: Receiver | None = Receiver(name)

    @property
    def plugged(self) -> bool:
        return self._rx is not None

    def unplug(self) -> None:
        self.close()
        self.outages.append([now(), math.inf])

    def plug(self) -> None:
        self._rx = Receiver(self.name)
        self.outages[-1][1] = now()

    @property
    def messages(self) -> list[tuple[float, tuple[int, ...]]]:
        return self._done + (list(self._rx.messages) if self._rx else [])

    def close(self) -> None:
        if self._rx is not None:
            self._done += self._rx.messages
            self._rx.close()
            self._rx = None


def move_controls(port: int, seconds: float, seed: int, out: str) -> None:
    """Play the controls over OSC for ``seconds`` (run in its own process); write what was
    sent, with the tempo changes and their host times, to the JSON file ``out``."""
    from pythonosc.udp_client import SimpleUDPClient

    client, rng = SimpleUDPClient("127.0.0.1", port), random.Random(seed)
    sent, tempos, stored = 0, [], set()

    def send(address: str, *args) -> None:
        nonlocal sent
        client.send_message(address, list(args))
        sent += 1

    def tempo() -> None:
        bpm = rng.randrange(70, 181)
        tempos.append((now(), bpm))
        send("/rvaed/tempo", bpm)

    start = time.monotonic()
    end = start + seconds
    tempo()
    next_tempo, next_burst = start + rng.uniform(20, 40), start + rng.uniform(5, 15)
    x, y = 0.5, 0.5
    while (moment := time.monotonic()) < end:
        if moment >= next_tempo:
            tempo()
            next_tempo = moment + rng.uniform(20, 40)
        elif moment >= next_burst:  # a fast fader sweep: several hundred messages a second
            for _ in range(rng.randrange(100, 300)):
                x, y = _wander(rng, x, 0.05), _wander(rng, y, 0.05)
                send("/rvaed/xy", x, y)
                time.sleep(0.002)
            next_burst = time.monotonic() + rng.uniform(5, 15)
        else:
            roll = rng.random()
            if roll < 0.75:
                x, y = _wander(rng, x, 0.02), _wander(rng, y, 0.02)
                send("/rvaed/xy", x, y)
            elif roll < 0.82:
                send("/rvaed/threshold", rng.uniform(0.1, 0.9))
            elif roll < 0.86:
                send("/rvaed/swing", rng.uniform(0.5, 0.75))
            elif roll < 0.90:
                send("/rvaed/timing", rng.uniform(0.0, 2.0))
            elif roll < 0.95:
                send("/rvaed/mute", rng.randrange(1, 10), rng.randrange(2))
            elif roll < 0.975 or not stored:
                slot = rng.randrange(1, 9)
                stored.add(slot)
                send("/rvaed/preset/store", slot)
            else:
                send("/rvaed/preset/recall", rng.choice(sorted(stored)))
        time.sleep(max(0.0, 0.02 - (time.monotonic() - moment)))  # 50 messages a second
    Path(out).write_text(json.dumps({"sent": sent, "seconds": time.monotonic() - start,
                                     "tempos": tempos}))


def _wander(rng: random.Random, value: float, step: float) -> float:
    return min(1.0, max(0.0, value + rng.uniform(-step, step)))


# -- watching the daemon -----------------------------------------------------------------------

class LogFollower:
    """The daemon's log lines as they appear, each stamped with the soak's elapsed seconds."""

    def __init__(self, path: Path, started: float) -> None:
        self.path, self.started = path, started
        self.lines: list[tuple[float, str]] = []
        self._offset, self._partial = 0, ""

    def read(self) -> None:
        with open(self.path, errors="replace") as log:
            log.seek(self._offset)
            text = log.read()
            self._offset = log.tell()
        *complete, self._partial = (self._partial + text).split("\n")
        stamp = round(now() - self.started, 1)
        self.lines += [(stamp, line) for line in complete if line]

    def count(self, needle: str) -> int:
        return sum(needle in line for _, line in self.lines)


def rss_kb(pid: int) -> int:
    """The daemon's anonymous resident memory (RssAnon: its heaps, where a leak grows). VmRSS
    also counts the decode table's pages, mapped from /dev/shm: they come in as the pad visits
    them, up to the table's size (28.8 MB), and made VmRSS drift 8-10 % over a soak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError(f"no RssAnon for pid {pid}")


class Trainings:
    """Asks for one training at a time (inbox drop or /rvaed/train, alternately) and switches
    between library models now and then."""

    def __init__(self, daemon: DaemonProcess, log: LogFollower, rng: random.Random) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.daemon, self.log, self.rng = daemon, log, rng
        self.osc = SimpleUDPClient("127.0.0.1", daemon.port)
        self.requested = self.switches = 0
        self._asked_at, self._next_ask, self._done = -math.inf, FIRST_TRAINING, 0
        self._next_switch = FIRST_SWITCH
        self._files = sorted(GROOVE.rglob("*_beat_4-4.mid"))  # every pair trains a model

    def _secret(self) -> str:
        """Commands that touch files carry the daemon's secret (made at its first start)."""
        return (self.daemon.dirs["state"] / "secret").read_text().strip()

    def finished(self) -> int:
        return sum(self.log.count(outcome) for outcome in TRAINING_OUTCOMES)

    def step(self, elapsed: float) -> None:
        done = self.finished()
        if done > self._done:
            self._done, self._next_ask = done, elapsed + self.rng.uniform(*TRAINING_GAP)
        if ((done >= self.requested and elapsed >= self._next_ask)
                or elapsed - self._asked_at > TRAINING_TIMEOUT):
            self._ask(elapsed)
        models = self._library()
        if models and elapsed >= self._next_switch:
            self.osc.send_message("/rvaed/model", [self._secret(), self.rng.choice(models)])
            self.switches += 1
            self._next_switch = elapsed + self.rng.uniform(*SWITCH_GAP)

    def _ask(self, elapsed: float) -> None:
        taken = sorted((self.daemon.dirs["inbox"] / "taken").glob("*"))
        if self.requested % 2 and taken:
            batch = self.rng.choice(taken)
            self.osc.send_message("/rvaed/train", [self._secret(), f"taken/{batch.name}"])
        else:
            for file in self.rng.sample(self._files, 2):
                shutil.copy(file, self.daemon.dirs["inbox"] / f"{self.requested}-{file.name}")
        self.requested += 1
        self._asked_at, self._next_ask = elapsed, math.inf

    def _library(self) -> list[str]:
        folder = self.daemon.dirs["models"]
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name[0] != ".")


# -- the run -----------------------------------------------------------------------------------

def soak(minutes: float, seed: int, workdir: Path) -> dict:
    """Run the soak in ``workdir`` and return the report (see `failures` for the verdict)."""
    rng = random.Random(seed)
    seconds = minutes * 60
    model = starter_model()
    jack_name = free_jack_name("rvaed-soak")
    jack = start_jack(jack_name, log=workdir / "jackd.log", period=JACK_PERIOD)
    os.environ["JACK_DEFAULT_SERVER"] = jack_name
    port_name = f"soak-drums-{os.getpid()}"
    drums = ComingAndGoingPort(port_name)
    daemon = DaemonProcess(
        workdir, free_udp_port(), verbose=False, model=str(model),
        link={"enabled": False},
        midi={"api": "jack", "outputs": [{"port": port_name, "virtual": False,
                                          "clock_out": True}]},
        training={"settle_seconds": 1.0, "epochs": EPOCHS})
    controls = None
    try:
        daemon.start(ready=lambda: "connected to" in daemon.text())
        started = now()
        log = LogFollower(daemon.log, started)
        sent_file = workdir / "controls.json"
        controls = multiprocessing.get_context("spawn").Process(
            target=move_controls, args=(daemon.port, seconds, seed, str(sent_file)),
            name="controls")
        controls.start()
        trainings = Trainings(daemon, log, rng)
        rss, crashed = _play(daemon, drums, log, trainings, rng, started, seconds)
        controls.join(30)
        exit_code = daemon.proc.returncode if crashed else daemon.stop()
        time.sleep(0.5)  # the last note-offs through JACK
        log.read()
        drums.close()
        sent = json.loads(sent_file.read_text()) if sent_file.is_file() else {"tempos": []}
    finally:
        if controls is not None and controls.is_alive():
            controls.kill()
        daemon.kill()
        drums.close()
        stop_jack(jack)
    messages = sorted(drums.messages)
    (workdir / "received.json").write_text(json.dumps(
        {"started": started, "outages": drums.outages, "messages": messages}))
    return {
        "minutes": minutes, "seed": seed,
        "daemon": {"exit_code": exit_code, "died_while_playing": crashed},
        "rss": rss_summary(rss, seconds, log),
        "timing": clock_timing(messages, sent["tempos"], drums.outages),
        "notes": {**note_balance(messages, drums.outages), "sent": daemon_sent(log)},
        "controls": {"osc_messages": sent.get("sent", 0), "tempo_changes": len(sent["tempos"])},
        "training": {"requested": trainings.requested, "finished": trainings.finished(),
                     "models_ready": log.count("training: model")},
        "model_switch_requests": trainings.switches,
        "model_swaps": log.count("now playing model"),
        "jack": {"period_frames": JACK_PERIOD,
                 "xruns": (workdir / "jackd.log").read_text(errors="replace").count("XRun")},
        "port": {"outages": len(drums.outages), "vanished": log.count("vanished"),
                 "unplugged_s": [[round(a - started, 1), round(b - started, 1)]
                                 for a, b in drums.outages],
                 "reconnects": log.count("reconnected to")},
        "warnings": [f"t={t:.1f}s {line}" for t, line in log.lines
                     if line.split(" ", 1)[0] in LEVELS],
        "other_output": [line for _, line in log.lines
                         if line.split(" ", 1)[0] not in (*LEVELS, "INFO", "DEBUG")][:50],
    }


def _play(daemon: DaemonProcess, drums: ComingAndGoingPort, log: LogFollower,
          trainings: Trainings, rng: random.Random, started: float,
          seconds: float) -> tuple[list[tuple[float, int]], bool]:
    """The soak's main loop: RSS samples, the port coming and going, training requests.
    Returns the RSS samples (elapsed s, kB) and whether the daemon died."""
    rss: list[tuple[float, int]] = []
    next_rss, next_unplug, plug_at = 0.0, rng.uniform(15, 30), math.inf
    while (elapsed := now() - started) < seconds:
        if daemon.proc.poll() is not None:
            return rss, True
        log.read()
        if elapsed >= next_rss:
            rss.append((round(elapsed, 1), rss_kb(daemon.proc.pid)))
            next_rss += RSS_EVERY
        if drums.plugged and elapsed >= next_unplug and elapsed < seconds - 10:
            drums.unplug()
            plug_at = elapsed + rng.uniform(2, 5)
        elif not drums.plugged and elapsed >= plug_at:
            drums.plug()
            next_unplug = elapsed + rng.uniform(20, 35)
        trainings.step(elapsed)
        time.sleep(STEP)
    if not drums.plugged:
        drums.plug()
    time.sleep(RECONNECT_SETTLE)
    rss.append((round(now() - started, 1), rss_kb(daemon.proc.pid)))
    return rss, daemon.proc.poll() is not None


# -- the report --------------------------------------------------------------------------------

def rss_summary(samples: list[tuple[float, int]], seconds: float, log: LogFollower) -> dict:
    """First, last and largest RSS, and the growth from the end of warm-up to the end.

    Warm-up is the first quarter of the run, and lasts at least until the `WARMUP_SWAPS`th
    model swap: each of the first swaps (a full-size model loaded, its decode table built)
    leaves the heap a little larger until its working set is reached. In a 10-minute run it
    grew over the first four swaps (55.8 -> 63.6 MB in 95 s) and was flat from there (slope
    +0.06 MB/min over 200-600 s, 34 swaps); a 2-minute run measured from the first swap
    measured that climb (+3 to +18 % over runs).
    """
    swaps = [t for t, line in log.lines if "now playing model" in line][:WARMUP_SWAPS]
    warmup = max([WARMUP * seconds, *swaps[-1:]])
    after = [kb for t, kb in samples if t >= warmup]
    if len(after) < 6:  # too short a run after warm-up: its last samples
        after = [kb for _, kb in samples[-6:]]
    baseline, final = float(np.median(after[:3])), float(np.median(after[-3:]))
    return {"first_mb": samples[0][1] / 1024, "last_mb": samples[-1][1] / 1024,
            "max_mb": max(kb for _, kb in samples) / 1024, "warmup_s": warmup,
            "baseline_mb": baseline / 1024, "final_mb": final / 1024,
            "growth_percent": 100 * (final - baseline) / baseline,
            "samples": samples}


def clock_timing(messages: list, tempos: list, outages: list) -> dict:
    """Arrival of each MIDI clock tick against its ideal grid (see the module docstring)."""
    ticks = np.array([t for t, m in messages if m == (CLOCK,)])
    breaks = [(t, t + TEMPO_SETTLE) for t, _ in tempos]
    breaks += [(a, b + RECONNECT_SETTLE) for a, b in outages]
    errors, off_tempo, segments = [], 0, 0
    for index, (since, bpm) in enumerate(tempos):
        until = tempos[index + 1][0] if index + 1 < len(tempos) else math.inf
        period = 60.0 / (bpm * 24)
        for lo, hi in _stretches(since + TEMPO_SETTLE, until, breaks):
            stretch = ticks[(ticks >= lo) & (ticks < hi)]
            if len(stretch) < 24:
                continue
            segments += 1
            steps = np.round((stretch - stretch[0]) / period)
            off_tempo += abs(np.polyfit(steps, stretch, 1)[0] / period - 1) > OFF_TEMPO
            phase = stretch - steps * period
            errors.append(phase - np.median(phase))
    if not errors:
        return {"ticks": len(ticks), "timed": 0}
    error = np.concatenate(errors)
    size = np.abs(error)
    return {"what": "MIDI clock tick arrival at the receiver vs the ideal tick grid (ms)",
            "ticks": len(ticks), "timed": len(error), "stretches": segments,
            "stretches_off_tempo": int(off_tempo),
            "p50_ms": 1000 * float(np.percentile(size, 50)),
            "p99_ms": 1000 * float(np.percentile(size, 99)),
            "max_ms": 1000 * float(size.max()),
            "late": int((error > LATE).sum()), "late_threshold_ms": 1000 * LATE}


def _stretches(lo: float, hi: float, breaks: list) -> list[tuple[float, float]]:
    """[lo, hi) minus every break interval."""
    pieces = [(lo, hi)]
    for a, b in breaks:
        pieces = [piece for p, q in pieces
                  for piece in ((p, min(q, a)), (max(p, b), q)) if piece[0] < piece[1]]
    return pieces


def note_balance(messages: list, outages: list) -> dict:
    """Note-ons against note-offs as the drum machine sees them, across unplugging.

    A key sounds from its note-on until a note-off of that key or an All Notes Off on its
    channel. A note whose note-off was lost while unplugged is ended by the All Notes Off the
    daemon sends on reconnecting. A note is stuck when it sounded longer than `STUCK_AFTER`
    (many times any gate the soak plays) with the port plugged in all along, whatever ended it
    at last (its note-off, or the All Notes Off of the shutdown), or when nothing ended it.
    A note-on for a key still sounding is counted apart: the daemon ends a note before playing
    it again, so each one is a note-off that got lost on the way. A long note whose note-off
    went missing while MIDI clock ticks went missing too is listed apart as lost in transport
    (a late JACK cycle); the daemon's own count of what it sent (`daemon_sent`) judges those.
    """
    sounding: dict[tuple[int, int], float] = {}
    ons = offs = again = cleared = orphans = 0
    stuck, lost, longest = [], [], 0.0
    ticks = np.array([t for t, m in messages if m == (CLOCK,)])

    def unplugged_between(a: float, b: float) -> bool:
        return any(a <= start <= b for start, _ in outages)

    def reconnecting(t: float) -> bool:
        return any(end <= t <= end + RECONNECT_WINDOW for _, end in outages)

    def ended(key: tuple[int, int], t: float, by: str | None) -> None:
        nonlocal longest
        on = sounding.pop(key)
        if unplugged_between(on, t):
            return
        longest = max(longest, t - on)
        if t - on > STUCK_AFTER or by is None:
            note = {"channel": key[0] + 1, "note": key[1], "on": on, "seconds": t - on,
                    "ended_by": by}
            (lost if by and _ticks_lost(ticks, on, on + STUCK_AFTER) else stuck).append(note)

    for t, message in messages:
        kind = message[0] & 0xF0
        key = (message[0] & 0x0F, message[1] if len(message) > 1 else -1)
        if kind == NOTE_ON and len(message) == 3 and message[2]:
            ons += 1
            again += key in sounding
            sounding.setdefault(key, t)
        elif kind == NOTE_OFF or (kind == NOTE_ON and len(message) == 3):
            offs += 1
            if key in sounding:
                ended(key, t, "note-off")
            else:
                orphans += 1
        elif kind == CONTROL and key[1] == ALL_NOTES_OFF:
            for held in [k for k in sounding if k[0] == key[0]]:
                if reconnecting(t):
                    sounding.pop(held)
                    cleared += 1
                else:
                    ended(held, t, "All Notes Off")
    end = messages[-1][0] if messages else 0.0
    for key in list(sounding):
        ended(key, end, None)
    return {"note_ons": ons, "note_offs": offs, "note_on_while_sounding": again,
            "ended_by_reconnect_all_notes_off": cleared, "offs_without_on": orphans,
            "longest_note_s": longest, "stuck": stuck, "note_off_lost_in_transport": lost,
            "longest_silence_s": _longest_silence(messages, outages)}


def _ticks_lost(ticks: np.ndarray, start: float, end: float) -> bool:
    """Whether MIDI clock ticks went missing between ``start`` and ``end``: JACK dropped a
    late cycle there, so a note-off missing then was lost on the way, not left out."""
    near = ticks[(ticks >= start - 0.1) & (ticks <= end)]
    gaps = np.diff(near)
    return len(gaps) < 2 or gaps.max() > 2.5 * np.median(gaps)


def daemon_sent(log: LogFollower) -> dict | None:
    """The note-ons and note-offs the daemon says it sent (its last log line on SIGTERM),
    dropped ones included: every note-on must have had its note-off, whatever the port did."""
    for _, line in log.lines:
        if found := SENT.search(line):
            return {"note_ons": int(found[1]), "note_offs": int(found[2])}
    return None


def _longest_silence(messages: list, outages: list) -> float | None:
    """The longest time between note-ons while the port was plugged in (the music stopping)."""
    times = [t for t, m in messages if m[0] & 0xF0 == NOTE_ON and len(m) == 3 and m[2]]
    gaps = [b - a for a, b in itertools.pairwise(times)
            if not any(a <= end and start <= b for start, end in outages)]
    return max(gaps, default=None)


def failures(report: dict) -> list[str]:
    """Why the soak fails (empty: it passed)."""
    found = []
    daemon = report["daemon"]
    if daemon["died_while_playing"]:
        found.append(f"the daemon died while playing (exit code {daemon['exit_code']})")
    elif daemon["exit_code"] != 0:
        found.append(f"the daemon exited with {daemon['exit_code']} on SIGTERM")
    if report["notes"]["stuck"]:
        found.append(f"{len(report['notes']['stuck'])} stuck note(s) at the receiver")
    sent = report["notes"]["sent"]
    if sent is None:
        found.append("the daemon did not report the notes it sent")
    elif sent["note_ons"] != sent["note_offs"]:
        found.append(f"the daemon sent {sent['note_ons']} note-ons but "
                     f"{sent['note_offs']} note-offs")
    if report["rss"]["growth_percent"] > MAX_GROWTH:
        found.append(f"RSS grew {report['rss']['growth_percent']:.1f}% after warm-up "
                     f"(limit {MAX_GROWTH:.0f}%)")
    port = report["port"]
    if port["reconnects"] < port["outages"]:
        found.append(f"the port came back {port['outages']} time(s) but the daemon "
                     f"reconnected {port['reconnects']} time(s)")
    return found


def print_report(report: dict) -> None:
    rss, timing, notes = report["rss"], report["timing"], report["notes"]
    print(f"soak: {report['minutes']:g} min, seed {report['seed']}")
    print(f"  daemon exit code: {report['daemon']['exit_code']}"
          f"{' (died while playing)' if report['daemon']['died_while_playing'] else ''}")
    print(f"  RSS MB: first {rss['first_mb']:.1f}, last {rss['last_mb']:.1f}, "
          f"max {rss['max_mb']:.1f}; growth after {rss['warmup_s']:.0f} s warm-up "
          f"{rss['growth_percent']:+.1f}% ({rss['baseline_mb']:.1f} -> {rss['final_mb']:.1f})")
    print("  RSS over time (s: MB): " + ", ".join(f"{t:.0f}: {kb / 1024:.1f}"
                                                 for t, kb in rss["samples"]))
    if timing.get("timed"):
        print(f"  timing ({timing['what']}): {timing['timed']} ticks in {timing['stretches']} "
              f"stretches, p50 {timing['p50_ms']:.2f}, p99 {timing['p99_ms']:.2f}, "
              f"max {timing['max_ms']:.2f}; late (> {timing['late_threshold_ms']:.0f} ms) "
              f"{timing['late']}; stretches off tempo {timing['stretches_off_tempo']}")
    else:
        print(f"  timing: no clock ticks could be timed ({timing['ticks']} received)")
    sent = notes["sent"] or {"note_ons": "?", "note_offs": "?"}
    print(f"  notes sent by the daemon: {sent['note_ons']} on, {sent['note_offs']} off")
    print(f"  notes at the receiver: {notes['note_ons']} on, {notes['note_offs']} off, "
          f"{notes['note_on_while_sounding']} on while sounding (a lost note-off), "
          f"{notes['ended_by_reconnect_all_notes_off']} ended by All Notes Off on reconnect, "
          f"{notes['offs_without_on']} offs without on; longest note "
          f"{notes['longest_note_s']:.2f} s; longest silence while plugged "
          f"{notes['longest_silence_s']:.2f} s; stuck {len(notes['stuck'])}; note-off lost "
          f"in transport {len(notes['note_off_lost_in_transport'])}")
    print(f"  controls: {report['controls']['osc_messages']} OSC messages, "
          f"{report['controls']['tempo_changes']} tempo changes")
    print(f"  training: {report['training']['requested']} requested, "
          f"{report['training']['models_ready']} models ready; model switch requests "
          f"{report['model_switch_requests']}; model swaps {report['model_swaps']}")
    port = report["port"]
    print(f"  port: unplugged {port['outages']} times, daemon saw it vanish {port['vanished']} "
          f"times and reconnected {port['reconnects']} times; unplugged (s): "
          + ", ".join(f"{a:.0f}-{b:.0f}" for a, b in port["unplugged_s"]))
    print(f"  JACK: period {report['jack']['period_frames']} frames, "
          f"{report['jack']['xruns']} xrun reports (late cycles lose MIDI at the receiver)")
    print(f"  log lines WARNING or above: {len(report['warnings'])}")
    for line in report["warnings"]:
        print(f"    {line}")
    if report["other_output"]:
        print("  other daemon output:")
        for line in report["other_output"]:
            print(f"    {line}")
    found = failures(report)
    print("FAILED: " + "; ".join(found) if found else "PASSED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="work in DIR and keep it (config, daemon.log, models, "
                             "received.json: every MIDI message with its arrival time)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up when stopped
    with tempfile.TemporaryDirectory(prefix="rvaed-soak-") as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        report = soak(args.minutes, args.seed, workdir)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if failures(report) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Every benchmark in one run, written up as BENCHMARKS.md beside their targets.

Runs control, timing, peers, startup (with memory), decode and train one after another (torch
is first imported by decode, after the timing-sensitive runs), with shorter runs than each
benchmark's own defaults so that the whole takes under about ten minutes (`--long`: their
defaults; `--quick`: tiny sizes, for a smoke test, whose figures mean little). Then writes the
report: the machine first (CPU, cores, memory, kernel, Python, library versions, and the load
average before and after, since a shared machine is noisy), then each benchmark's figures
(p50/p99/max where they are a distribution) and every target beside the measured
value, met or not. A benchmark that fails is reported as failed; the others still run.
"""

import argparse
import contextlib
import datetime
import importlib
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HELP = "run every benchmark and write BENCHMARKS.md (figures beside their targets)"
ORDER = ("control", "timing", "peers", "startup", "decode", "train")
PLANS = {  # arguments per benchmark: this command's default run, and --quick
    "control": (["--seconds", "3"], ["--seconds", "0.5", "--no-midi"]),
    "timing": (["--seconds", "8"], ["--seconds", "0.5"]),
    "peers": (["--seconds", "8"], ["--seconds", "0.5"]),
    "startup": (["--runs", "5", "--rss-seconds", "60"], ["--runs", "1", "--rss-seconds", "2"]),
    "decode": ([], ["--calls", "200", "--warmup", "20", "--spaced-calls", "20"]),
    "train": ([], ["--windows", "64", "--epochs", "1", "--threads", "1"]),
}
PACKAGES = ("rvaed", "numpy", "onnxruntime", "torch", "mido", "python-rtmidi", "python-osc",
            "isobar")
SCHEDULERS = ("rvaed", "isobar", "asyncio sleep")
FLAT_PERCENT = 10.0  # memory growth that still counts as flat (the soak run's limit)


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"),
                        help="report to write (default ./BENCHMARKS.md)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="tiny runs (a smoke test; the figures are not comparable)")
    size.add_argument("--long", action="store_true",
                      help="each benchmark's own, longer defaults")


def run(args) -> dict:
    started = time.monotonic()
    figures: dict = {"machine": machine(), "mode": _mode(args), "benchmarks": {}}
    for name in ORDER:
        print(f"== rvaed bench {name}", flush=True)
        figures["benchmarks"][name] = _run_one(name, _plan(name, args))
    figures["machine"]["load_average_end"] = _load_average()
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["targets"] = [target.verdict(figures["benchmarks"]) for target in TARGETS]
    _write(args.out, render(figures))
    print(f"wrote {args.out} ({figures['seconds']:g} s)")
    return figures


def _mode(args) -> str:
    return "quick" if args.quick else "long" if args.long else "default"


def _plan(name: str, args) -> list[str]:
    if args.long:
        return []
    normal, quick = PLANS[name]
    return quick if args.quick else normal


def _run_one(name: str, argv: list[str]) -> dict:
    """One benchmark with ``argv``; its figures, or the reason it failed."""
    module = importlib.import_module(f"rvaed.benchmarks.{name}")
    parser = argparse.ArgumentParser(prog=f"rvaed bench {name}")
    module.add_arguments(parser)
    try:
        return {"arguments": argv, **module.run(parser.parse_args(argv))}
    except Exception as exc:  # report it and go on: the other figures still count
        print(f"rvaed bench {name} failed: {type(exc).__name__}: {exc}", flush=True)
        return {"arguments": argv, "error": f"{type(exc).__name__}: {exc}"}


# -- the machine ------------------------------------------------------------------------------

def machine() -> dict:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    memory = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), 0)
    versions = {}
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory / 1024**2, 1),
            "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version(), "packages": versions,
            "jackd": _jackd_version(), "load_average_start": _load_average()}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _jackd_version() -> str:
    try:
        done = subprocess.run(["jackd", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return next((line.strip() for line in done.stdout.splitlines() if "version" in line),
                "unknown")


# -- targets ----------------------------------------------------------------------------------

def _get(figures: dict, *path):
    """figures[path[0]][path[1]]...; None when any part is missing."""
    for key in path:
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return figures


@dataclass(frozen=True)
class Target:
    """One target, the benchmark it belongs to, and how to read its value from the figures."""

    area: str  # the benchmark: decode, train, timing, peers, control, startup
    what: str
    target: str
    value: Callable[[dict], float | None]  # from all benchmarks' figures; None: not measured
    met: Callable[[float], bool]
    unit: str = ""

    def verdict(self, benchmarks: dict) -> dict:
        value = self.value(benchmarks)
        return {"area": self.area, "what": self.what, "target": self.target,
                "value": value, "unit": self.unit,
                "met": None if value is None else bool(self.met(value))}


def _train_150(benchmarks: dict) -> float | None:
    train = benchmarks.get("train", {})
    if train.get("windows") != 1000:
        return None  # the target is for 1,000 windows
    return next((run["seconds_for_150_epochs"] for run in train.get("runs", [])
                 if run["threads"] == 1), None)


def _rvaed_margin(condition: str) -> Callable[[dict], float | None]:
    """rvaed's receiver p99 minus the best peer's (negative: rvaed is tighter)."""
    def value(benchmarks: dict) -> float | None:
        row = _get(benchmarks, "peers", "conditions", condition) or {}
        peers = [row[s]["p99_ms"] for s in SCHEDULERS[1:] if "p99_ms" in row.get(s, {})]
        ours = _get(row, "rvaed", "p99_ms")
        return None if ours is None or not peers else round(ours - min(peers), 3)
    return value


def _growth(phase: str) -> Callable[[dict], float | None]:
    def value(benchmarks: dict) -> float | None:
        row = _get(benchmarks, "control", phase) or {}
        if "rss_mb_before" not in row:
            return None
        return round(100 * (row["rss_mb_after"] - row["rss_mb_before"]) / row["rss_mb_before"],
                     1)
    return value


def _figure(*path: str) -> Callable[[dict], float | None]:
    """A reader of one figure at ``path`` (see `_get`)."""
    return lambda benchmarks: _get(benchmarks, *path)


def _timing_targets() -> list[Target]:
    targets = []
    for condition in ("idle", "training", "osc flood"):
        targets += [
            Target("timing", f"send-time error p99, {condition}", "<= 0.5 ms",
                   _figure("timing", "conditions", condition, "p99_ms"),
                   lambda v: v <= 0.5, "ms"),
            Target("timing", f"send-time error max, {condition}", "<= 2 ms",
                   _figure("timing", "conditions", condition, "max_ms"),
                   lambda v: v <= 2.0, "ms")]
    targets += [  # the real-time part never waits on the rest of the process
        Target("timing", "send-time error p99, saturated", "<= 0.5 ms",
               _figure("timing", "conditions", "saturated", "p99_ms"), lambda v: v <= 0.5, "ms"),
        Target("timing", "send-time error max, saturated", "<= 5 ms",
               _figure("timing", "conditions", "saturated", "max_ms"), lambda v: v <= 5.0, "ms")]
    targets.append(Target(
        "timing", "sequencer CPU, dense pattern at 200 BPM, idle",
        "reported; far from a whole core (< 50%)",
        lambda b: _get(b, "timing", "conditions", "idle", "sequencer_cpu_percent"),
        lambda v: v < 50, "%"))
    for condition in ("idle", "training", "osc flood"):
        targets.append(Target(
            "peers", f"receiver p99: rvaed minus the best peer, {condition}",
            "<= 0 (rvaed tightest)",
            _rvaed_margin(condition), lambda v: v <= 0, "ms"))
    return targets


TARGETS: list[Target] = [
    Target("decode", "decode p99 (the daemon's path: the table)", "<= 150 us",
           lambda b: _get(b, "decode", "table", "p99_us"), lambda v: v <= 150, "us"),
    Target("decode", "decode p99 spaced 5 ms apart (cold), the table", "<= 250 us",
           lambda b: _get(b, "decode", "table", "spaced", "p99_us"), lambda v: v <= 250, "us"),
    Target("decode", "table onset agreement with direct fp32 decoding", ">= 99.9 %",
           lambda b: _percent(_get(b, "decode", "table_build", "onset_agreement")),
           lambda v: v >= 99.9, "%"),
    Target("decode", "decode p50 speed-up over torch eager", ">= 3x",
           lambda b: _get(b, "decode", "speedup_p50"), lambda v: v >= 3, "x"),
    Target("decode", "decoder-only process peak RSS (torch not imported)", "<= 120 MB",
           lambda b: None if _get(b, "decode", "process", "torch_imported") is not False
           else _get(b, "decode", "process", "peak_rss_mb"), lambda v: v <= 120, "MB"),
    Target("train", "150 epochs on 1,000 windows, 1 torch thread", "<= 60 s", _train_150,
           lambda v: v <= 60, "s"),
    *_timing_targets(),
    Target("control", "control -> installed p99, OSC flood 2,000/s", "<= 1 ms",
           lambda b: _get(b, "control", "osc_flood", "p99_ms"), lambda v: v <= 1, "ms"),
    Target("control", "control -> installed p99, MIDI flood 2,000/s", "<= 1 ms",
           lambda b: _get(b, "control", "midi_flood", "p99_ms"), lambda v: v <= 1, "ms"),
    Target("control", "web pad (WebSocket) -> installed p99", "<= 2 ms",
           lambda b: _get(b, "control", "web", "p99_ms"), lambda v: v <= 2, "ms"),
    Target("control", "RSS growth during the OSC flood", f"flat (<= {FLAT_PERCENT:g}%)",
           _growth("osc_flood"), lambda v: v <= FLAT_PERCENT, "%"),
    Target("startup", "rvaed run -> first note, worst of the runs", "<= 2 s",
           lambda b: _get(b, "startup", "first_note_max_s"), lambda v: v <= 2, "s"),
    Target("startup", "daemon RSS while playing (max)", "<= 120 MB",
           lambda b: _get(b, "startup", "memory", "rss_mb_max"), lambda v: v <= 120, "MB"),
    Target("startup", "daemon RSS growth while playing", f"flat (<= {FLAT_PERCENT:g}%)",
           lambda b: _get(b, "startup", "memory", "growth_percent"),
           lambda v: v <= FLAT_PERCENT, "%"),
]


# -- the report -------------------------------------------------------------------------------

def render(figures: dict) -> str:
    """BENCHMARKS.md from the figures of a run."""
    lines = ["# rvaed benchmarks", "",
             f"Generated by `rvaed bench all` ({figures['mode']} run, "
             f"{figures['seconds']:g} s); do not edit by hand: run it again. Every comparison "
             "below was measured side by side in this one run. The benchmarks report and never "
             "fail: a figure that misses its target says so here.", ""]
    lines += _machine_section(figures["machine"])
    lines += _targets_section(figures["targets"], quick=figures["mode"] == "quick")
    benchmarks = figures["benchmarks"]
    for name, section in (("timing", _timing_section), ("peers", _peers_section),
                          ("control", _control_section), ("startup", _startup_section),
                          ("decode", _decode_section), ("train", _train_section)):
        result = benchmarks.get(name, {})
        command = " ".join(["rvaed bench", name, *result.get("arguments", [])])
        lines += [f"## {name}", "", f"`{command}`", ""]
        lines += [f"Failed: {result['error']}", ""] if "error" in result else section(result)
    return "\n".join(lines).rstrip() + "\n"


def _machine_section(info: dict) -> list[str]:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return ["## Machine", "",
            f"- date: {info['date']}",
            f"- CPU: {info['cpu']}, {info['cores']} cores; memory {info['memory_gb']} GB",
            f"- kernel: {info['kernel']}; Python {info['python']}; {info['jackd']}",
            f"- packages: {packages}",
            f"- load average (1, 5, 15 min): {info['load_average_start']} at the start, "
            f"{info.get('load_average_end')} at the end",
            "- this machine is shared with other work and noisy: read the medians and p99 "
            "rather than single maxima, and compare rows of the same run only", ""]


def _targets_section(targets: list[dict], quick: bool) -> list[str]:
    lines = ["## Targets", "", "| benchmark | figure | target | measured | met |",
             "|---|---|---|---|---|"]
    for t in targets:
        measured = "not measured" if t["value"] is None else f"{_num(t['value'])} {t['unit']}"
        met = ("n/a" if t["met"] is None else "n/a (quick run)" if quick
               else "met" if t["met"] else "**not met**")
        lines.append(f"| {t['area']} | {t['what']} | {t['target']} | {measured} | {met} |")
    return [*lines, ""]


def _table(header: list[str], rows: list[list]) -> list[str]:
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}",
            *(f"| {' | '.join(_num(cell) for cell in row)} |" for row in rows), ""]


def _num(value) -> str:
    """Numbers as people read them: three decimals at most, no trailing zeros."""
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _timing_section(result: dict) -> list[str]:
    rows = [[name, r["messages"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["late"],
             r["sequencer_cpu_percent"], r["process_cpu_percent"]]
            for name, r in result["conditions"].items()]
    return [f"MIDI send-time error (actual - due, the output's sender process: 10 us buckets) "
            f"at {result['bpm']:g} BPM, dense pattern + MIDI clock, {result['seconds']:g} s per "
            f"condition, port {result['port']}; SCHED_FIFO "
            f"{'granted' if result['sched_fifo'] else 'refused'}; messages handed over "
            f"{result['lead_ms']:g} ms ahead.",
            "", *_table(["condition", "messages", "p50 ms", "p99 ms", "max ms", "late > 1 ms",
                         "sequencer CPU %", "process CPU %"], rows),
            *(f"- {name}: {r['load']}" for name, r in result["conditions"].items()
              if "load" in r), ""]


def _peers_section(result: dict) -> list[str]:
    rows = []
    for condition, row in result["conditions"].items():
        for scheduler in SCHEDULERS:
            cell = row.get(scheduler)
            if cell is None:
                rows.append([condition, scheduler, f"left out: isobar {result['isobar']}",
                             "", "", "", "", ""])
            elif "p50_ms" not in cell:
                rows.append([condition, scheduler, f"failed: {cell['error']}", "", "", "",
                             "", ""])
            else:
                own = cell.get("own_record")
                rows.append([condition, scheduler, cell["note_ons"], cell["p50_ms"],
                             cell["p99_ms"], cell["max_ms"], cell["late"],
                             cell["process_cpu_percent"]]
                            + ([" / ".join(_num(own[k]) for k in ("p50_ms", "p99_ms", "max_ms"))]
                               if own else ["-"]))
    return [f"Note-on timing measured at the receiver (jackd2's jack_midi_dump in its own "
            f"process, stamping JACK frames; period {result['period_ms']:g} ms, run realtime), "
            f"same pattern ({result['note_ons_per_loop']} note-ons per two-bar loop), same "
            f"tempo ({result['bpm']:g} BPM), same port, {result['seconds']:g} s per scheduler "
            f"per condition. Error = delay behind the ideal grid placed by the earliest "
            f"arrival, so it includes the receiver's period rounding (0 to "
            f"{result['period_ms']:g} ms) for every scheduler alike. isobar {result['isobar']}.",
            "", *_table(["condition", "scheduler", "note-ons", "p50 ms", "p99 ms", "max ms",
                         "late > 1 ms", "process CPU %", "own record p50/p99/max ms"], rows),
            *(f"- {condition}: {row['load']}" for condition, row in
              result["conditions"].items() if "load" in row), ""]


def _control_section(result: dict) -> list[str]:
    rows = [[phase, r["messages"], r["count"], r["decodes"], r["p50_ms"], r["p99_ms"],
             r["max_ms"], f"{r['rss_mb_before']} -> {r['rss_mb_after']}"]
            for phase in ("osc", "osc_flood", "web", "web_flood", "midi", "midi_flood")
            if (r := result.get(phase)) and r.get("count")]
    return [f"Control message -> pattern installed in the sequencer, model "
            f"{result['model']}, {result['seconds']:g} s per phase, flood "
            f"{result['flood_rate']:g} messages/s.", "",
            *_table(["phase", "messages", "installs", "decodes", "p50 ms", "p99 ms", "max ms",
                     "RSS MB"], rows)]


def _startup_section(result: dict) -> list[str]:
    memory = result["memory"]
    samples = ", ".join(f"{age:g} s: {rss}" for age, rss in memory["samples"])
    link = "on, loopback-only namespace" if result["link"] else "off"
    return [f"`rvaed run` (starter model, Link {link}) to the first note-on at the receiver, "
            f"{result['runs']} runs: p50 "
            f"{result['first_note_p50_s']} s, max {result['first_note_max_s']} s "
            f"({', '.join(str(t) for t in result['first_note_s'])} s). This includes the "
            f"musical wait from the loop start to the pattern's first hit.", "",
            f"Daemon RSS while playing (MB at seconds after the spawn): {samples}; growth "
            f"from {memory['early_at_s']:g} s to the end {memory['growth_percent']:+g}%. Of "
            f"the last figure, {memory.get('shared_mb_end', '?')} MB is shared memory "
            "(RssShmem: the JACK server's segments, mapped by every JACK client; with ALSA "
            "there is none).", ""]


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 3)


def _decode_section(result: dict) -> list[str]:
    rows = [[path, r.get("weights", "fp32"), r["p50_us"], r["p99_us"], r["max_us"],
             r.get("spaced", {}).get("p50_us", ""), r.get("spaced", {}).get("p99_us", "")]
            for path in ("table", "onnxruntime", "onnxruntime_fp32", "torch_eager")
            if (r := result.get(path))]
    process = result["process"]
    memory = (f"could not be measured: {process['error']}" if "error" in process else
              f"RSS {process.get('rss_mb', '?')} MB, peak {process['peak_rss_mb']} MB, torch "
              f"imported: {'yes' if process['torch_imported'] else 'no'}")
    speedup = (f"onnxruntime is {result['speedup_p50']}x faster than torch eager at p50. "
               if "speedup_p50" in result else "")
    return [f"Latent point -> Pattern, one thread: {result['calls']} calls per path back to "
            f"back, and {result.get('spaced_calls', 0)} spaced 5 ms apart as control changes "
            "come (cold caches). `table` is what the daemon plays once the model's table is "
            "built; `onnxruntime` (the model's int8 twin when it has one) serves until then "
            "and outside the table.", "",
            *_table(["path", "weights", "p50 us", "p99 us", "max us", "spaced p50 us",
                     "spaced p99 us"], rows),
            f"{speedup}A process that only loads the decoder and decodes: {memory}.", ""]


def _train_section(result: dict) -> list[str]:
    rows = [[r["threads"], r["seconds_per_epoch"], r["windows_per_second"],
             r["seconds_for_150_epochs"]] for r in result["runs"]]
    return [f"{result['windows']} synthetic windows, median of {result['epochs']} epochs.", "",
            *_table(["threads", "s/epoch", "windows/s", "150 epochs s"], rows)]


def _write(path: Path, text: str) -> None:
    from rvaed.core.atomic import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())

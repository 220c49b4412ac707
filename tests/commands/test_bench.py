"""`rvaed bench all`: every benchmark runs (tiny sizes) and the report has every section and
target. No timing is asserted: benchmarks report, they do not fail on a slow machine."""

import json
import re
import subprocess
import sys
from importlib import metadata

import pytest
from checks import require_tools

from rvaed.benchmarks.all import ORDER, TARGETS
from rvaed.benchmarks.peers import receiver_errors

FIGURES = {  # keys each benchmark must report
    "control": ("osc", "osc_flood", "web", "web_flood", "rss_mb_start", "rss_mb_end"),
    "timing": ("conditions", "sched_fifo", "lead_ms"),
    "peers": ("conditions", "period_ms", "isobar"),
    "startup": ("first_note_s", "first_note_p50_s", "first_note_max_s", "memory"),
    "decode": ("onnxruntime", "torch_eager", "speedup_p50", "process"),
    "train": ("runs",),
}
CONDITIONS = ("idle", "training", "osc flood")


def isobar_installed() -> bool:
    try:
        metadata.version("isobar")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def bench_all(tmp_path_factory):
    require_tools("jackd", "jack_lsp", "jack_midi_dump")
    folder = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "rvaed.cli", "bench", "all", "--quick", "--out",
         str(folder / "BENCHMARKS.md"), "--json", str(folder / "figures.json")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "figures.json").read_text()), \
        (folder / "BENCHMARKS.md").read_text(), done.stdout + done.stderr


def test_every_benchmark_reports_its_figures(bench_all):
    figures, _, _ = bench_all
    assert list(figures["benchmarks"]) == list(ORDER)
    for name, keys in FIGURES.items():
        result = figures["benchmarks"][name]
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert set(keys) <= set(result), f"{name} lacks {set(keys) - set(result)}"
    for condition in CONDITIONS:
        timing = figures["benchmarks"]["timing"]["conditions"][condition]
        assert timing["messages"] > 0 and timing["max_ms"] >= timing["p50_ms"]


def test_peers_measure_each_scheduler_at_the_receiver(bench_all):
    figures, _, stdout = bench_all
    peers = figures["benchmarks"]["peers"]
    schedulers = ["rvaed", "asyncio sleep"] + (["isobar"] if isobar_installed() else [])
    for condition in CONDITIONS:
        row = peers["conditions"][condition]
        for scheduler in schedulers:
            cell = row[scheduler]
            assert "error" not in cell, f"{condition}/{scheduler}: {cell.get('error')}"
            assert cell["note_ons"] > 0
            assert 0 <= cell["p50_ms"] <= cell["p99_ms"] <= cell["max_ms"]
        assert "own_record" in row["rvaed"]
    if not isobar_installed():
        assert peers["isobar"] == "not installed"
        assert "isobar is not installed" in stdout


def test_report_has_the_machine_every_section_and_every_target(bench_all):
    figures, report, _ = bench_all
    for heading in ("## Machine", "## Targets", *(f"## {name}" for name in ORDER)):
        assert heading in report
    assert "Failed:" not in report
    machine = figures["machine"]
    assert machine["cores"] >= 1 and len(machine["load_average_end"]) == 3
    assert f"Python {machine['python']}" in report
    assert len(figures["targets"]) == len(TARGETS)
    for target in figures["targets"]:
        assert f"| {target['what']} | {target['target']} |" in report
    unmeasured = {t["what"] for t in figures["targets"] if t["value"] is None}
    # --quick leaves out the MIDI phases and trains on fewer than 1,000 windows
    assert unmeasured <= {"control -> installed p99, MIDI flood 2,000/s",
                          "150 epochs on 1,000 windows, 1 torch thread"}
    assert "n/a (quick run)" in report


def test_every_benchmark_says_what_it_is_doing(bench_all):
    _, _, printed = bench_all
    for name in ORDER:
        assert re.search(rf"^bench {name} \[ *[0-9.]+ s\] \S", printed, re.MULTILINE), name


def test_a_benchmark_prints_progress_before_it_ends():
    bench = subprocess.Popen([sys.executable, "-m", "rvaed.cli", "bench", "decode", "--calls",
                              "20000", "--spaced-calls", "200", "--no-torch"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = bench.stderr.readline()
        running = bench.poll() is None  # the first line came while the work was still to do
    finally:
        bench.kill()
        bench.communicate()
    assert first.startswith("bench decode [") and "20000 calls" in first
    assert running


def test_receiver_errors_place_the_grid_by_the_earliest_arrival():
    # two notes, one loop of 1 beat at 60 BPM: note 36 at beat 0, note 38 at beat 0.5
    notes = [(0.0, (0x99, 36, 100)), (0.5, (0x99, 38, 100))]
    delays = [0.0, 0.002, 0.0005, 0.0, 0.004, 0.001]  # seconds behind the grid
    arrivals = []
    for index, delay in enumerate(delays):
        beat = index // 2 + (0.5 if index % 2 else 0.0)
        arrivals.append((10.0 + beat + delay, notes[index % 2][1]))
    arrivals.insert(2, (10.3, (0x89, 36, 0)))  # note-offs are not timed
    figures = receiver_errors(arrivals, notes, loop_beats=1.0, bpm=60.0)
    assert figures["note_ons"] == len(delays)
    assert figures["max_ms"] == pytest.approx(4.0)
    assert figures["p50_ms"] == pytest.approx(0.75)
    assert figures["late"] == 2  # 2 ms and 4 ms behind: more than 1 ms
    lost = arrivals[:3] + arrivals[4:]  # the second note 36 never arrived
    figures = receiver_errors(lost, notes, loop_beats=1.0, bpm=60.0)
    assert figures["note_ons"] == len(delays) - 1
    assert figures["max_ms"] == pytest.approx(4.0)  # the others still meet their own hits

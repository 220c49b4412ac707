"""The soak run, CI's 2-minute version: the real daemon under control floods, training
requests, model swaps and a MIDI port that comes and goes (tests/support/soak.py does the work).

It takes about 2.5 minutes; skip it locally with ``pytest -m "not soak"`` (CI runs it).
The full 10-minute run: ``python tests/support/soak.py`` (``--json FILE`` for the figures).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soak
from checks import require_tools

pytestmark = pytest.mark.soak

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "soak.py"
MINUTES = 2.0


def test_two_minutes_of_abuse_leave_no_stuck_note_no_crash_and_flat_memory(tmp_path):
    require_tools("jackd", "jack_lsp")
    report_file = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--minutes", str(MINUTES),
                          "--json", str(report_file), "--keep", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=MINUTES * 60 + 120)
    print(run.stdout)
    assert report_file.is_file(), run.stdout[-2000:] + run.stderr[-3000:]
    report = json.loads(report_file.read_text())

    assert not report["daemon"]["died_while_playing"], report["warnings"]
    assert report["daemon"]["exit_code"] == 0
    assert report["notes"]["stuck"] == []
    assert report["notes"]["sent"]["note_ons"] == report["notes"]["sent"]["note_offs"]
    assert report["rss"]["growth_percent"] <= soak.MAX_GROWTH, report["rss"]["samples"]
    port = report["port"]
    assert port["outages"] >= 2 and port["reconnects"] == port["outages"], port
    assert run.returncode == 0, soak.failures(report)

    # and the abuse really happened: music, control traffic, training swapped in
    assert report["notes"]["note_ons"] > 100
    assert report["controls"]["osc_messages"] > MINUTES * 60 * 40
    assert report["training"]["models_ready"] >= 1 and report["model_swaps"] >= 1
    assert report["timing"]["timed"] > 1000

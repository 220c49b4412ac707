"""The package type-checks: mypy, configured in pyproject.toml, finds nothing in rvaed.

The parts that drive the performance are typed against `rvaed.control.hub.Hub`, so a member
they use that `Performance` lacks (or one called with the wrong arguments) is caught here, not
on stage.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

from checks import missing

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900  # seconds: a cold run on a busy machine; a warm one (cached) takes seconds


def mypy(*args: str) -> subprocess.CompletedProcess:
    """mypy with the project's configuration, from the project root."""
    if importlib.util.find_spec("mypy") is None:
        missing("needs mypy and types-PyYAML: pip install -e '.[test]'")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=TIMEOUT)


def test_the_package_type_checks():
    done = mypy("rvaed")
    assert done.returncode == 0, f"mypy rvaed:\n{done.stdout}{done.stderr}"


def test_the_checker_sees_a_member_the_performance_lacks(tmp_path):
    """A tool calling what the hub does not offer fails the check, with the culprit named."""
    bad = tmp_path / "bad_tool.py"
    bad.write_text("from rvaed.control.hub import Hub\n\n\n"
                   "def nudge(performance: Hub) -> None:\n"
                   "    performance.set_xyz(0.5, 0.5, 0.5)\n")
    done = mypy(str(bad))
    assert done.returncode == 1, done.stdout + done.stderr
    assert '"Hub" has no attribute "set_xyz"' in done.stdout, done.stdout

"""Checks the tests share: real components present (or a skip that says why), one-line
errors, reproducible fuzzing, and a time limit that turns a hang into a failure."""

import contextlib
import os
import shutil
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).resolve().parents[1] / "data"


def missing(reason: str) -> None:
    """Skip (locally) or fail (under CI=true) because a real component is absent."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"missing component under CI: {reason}")
    pytest.skip(reason)


def require_tools(*tools: str) -> None:
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        missing(f"needs {', '.join(absent)} (Debian: jackd2, liblo-tools); run tests/run as root")


def only_loopback() -> bool:
    """True inside a network namespace whose only interface is loopback."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


def fuzz_settings(max_examples: int, deadline_ms: int | None = 2000) -> settings:
    """Reproducible fuzzing: the same examples on every run (CI can bisect a failure) and no
    example database written into the tree.

    RVAED_FUZZ_SCALE=N runs N times as many examples from a random seed: a longer campaign
    than CI's, to run by hand (`RVAED_FUZZ_SCALE=20 pytest tests/fuzz`).
    """
    scale = int(os.environ.get("RVAED_FUZZ_SCALE", "1"))
    return settings(max_examples=max_examples * scale, deadline=deadline_ms,
                    derandomize=scale == 1, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hung(BaseException):
    """A block ran past its time limit. Not an Exception, so that code under test that turns
    every Exception into a user error cannot pass a hang off as a clean refusal."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise `Hung` inside the block after ``seconds``: a hang becomes a failure.

    SIGALRM interrupts pure-Python loops (where a hang on bad input would be), and repeats
    until the block is left in case the first one lands where Python ignores exceptions (a
    garbage-collector callback). The test must run in the main thread, as pytest runs them.
    """
    def expire(_signum, _frame):
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # again, should this one be swallowed
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_one_line(message: str, *names: str) -> None:
    """A user error as the CLI prints it: exactly one line, naming each of ``names``."""
    assert len(message.splitlines()) == 1 and message.strip(), repr(message)
    for name in names:
        assert name in message, f"{name!r} not named in {message!r}"

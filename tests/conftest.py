"""Shared test fixtures: real components (a private JACK server, a loopback-only network).

A component that cannot be had here is a skip with its reason; under CI=true it is a failure,
so CI never passes by skipping what it was meant to prove.
"""

import contextlib
import os

import pytest
from checks import missing, only_loopback, require_tools
from jackmidi import FRAMES

from rvaed.benchmarks.harness import private_jack_server
from rvaed.core.errors import RvaedError
from rvaed.model.modeldir import starter_model


@pytest.fixture(scope="session")
def jack_server():
    """A private JACK server with the dummy driver; yields its name (also set in the env).

    Periods of `jackmidi.FRAMES` frames at 48 kHz, with real-time priority where the machine
    grants it (why: tests/support/jackmidi.py): events through it are rounded to a period.
    """
    require_tools("jackd", "jack_lsp")
    with contextlib.ExitStack() as stack:
        try:
            name = stack.enter_context(
                private_jack_server(period=FRAMES, realtime=True, prefix="rvaed-test"))
        except RvaedError as exc:
            pytest.fail(str(exc))
        yield name


@pytest.fixture
def link_network():
    """Guard for every test that enables Ableton Link: loopback-only namespace or no test."""
    if os.environ.get("RVAED_TEST_NETNS") != "1" or not only_loopback():
        missing("Link tests run only inside a loopback-only network namespace (tests/run)")


@pytest.fixture(scope="session")
def model_dir():
    """The shipped starter model: a real trained model, the one the daemon starts with."""
    return starter_model()

"""Shared test fixtures: real components (a private JACK server, a loopback-only network).

A component that cannot be had here is a skip with its reason; under CI=true it is a failure,
so CI never passes by skipping what it was meant to prove.
"""

import os

import pytest
from checks import missing, only_loopback, require_tools
from rig import free_jack_name, start_jack, stop_jack

from rvaed.model.modeldir import starter_model


@pytest.fixture(scope="session")
def jack_server():
    """A private JACK server with the dummy driver; yields its name (also set in the env).

    Period 64 frames at 48 kHz = 1.33 ms: events through it are rounded to that period.
    """
    require_tools("jackd", "jack_lsp")
    try:
        name = free_jack_name("rvaed-test")
        proc = start_jack(name)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name
    yield name
    if previous is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = previous
    stop_jack(proc)




@pytest.fixture
def link_network():
    """Guard for every test that enables Ableton Link: loopback-only namespace or no test."""
    if os.environ.get("RVAED_TEST_NETNS") != "1" or not only_loopback():
        missing("Link tests run only inside a loopback-only network namespace (tests/run)")


@pytest.fixture(scope="session")
def model_dir():
    """The shipped starter model: a real trained model, the one the daemon starts with."""
    return starter_model()

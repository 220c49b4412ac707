"""What the end-to-end tests share: a jack_midi_dump receiver on the test's JACK server."""

import os
import time

import pytest
from jackmidi import Receiver


@pytest.fixture
def receiver(jack_server):
    """A third-party receiver (jack_midi_dump) with a name of its own."""
    rx = Receiver(f"rx-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    yield rx
    rx.close()

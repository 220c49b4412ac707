"""What the end-to-end tests share: a receiver on the test's JACK server."""

import os
import time

import pytest
from jackmidi import Receiver


@pytest.fixture
def receiver(jack_server):
    """A receiver (in a process of its own) with a name of its own."""
    rx = Receiver(f"rx-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    yield rx
    rx.close()

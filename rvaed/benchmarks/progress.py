"""Progress lines of the benchmarks, written as they go: a run takes minutes, and a silent
terminal looks hung. They go to stderr, so the figures on stdout (and --json) stay clean."""

import sys
import time


class Progress:
    """``say(what)`` prints ``bench NAME [  12.3 s] what`` at once, timed from the start."""

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self.started = time.monotonic()

    def say(self, what: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"bench {self.benchmark} [{elapsed:6.1f} s] {what}", file=sys.stderr, flush=True)

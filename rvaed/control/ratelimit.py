"""Bad live input is logged, but never floods the log: one line per interval, the rest counted."""

import logging
import math
import time


class RateLimitedLog:
    """Bad live input: one warning per interval, the rest counted and reported with the next."""

    def __init__(self, logger: logging.Logger, prefix: str, interval: float = 5.0) -> None:
        self.logger, self.prefix = logger, prefix
        self.interval = interval
        self.count = 0
        self._last = -math.inf
        self._suppressed = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} more ignored)" if self._suppressed else ""
        self.logger.warning("%s: %s%s", self.prefix, message, extra)
        self._last, self._suppressed = now, 0


class TokenBucket:
    """A budget that refills at ``rate`` per second up to ``burst``: `take` spends from it."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self._at = time.monotonic()

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` if the budget holds it now (False, and nothing spent, if not)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


class RateLimitFilter(logging.Filter):
    """A third-party library's log lines (records from files under ``path_part``) held to the
    same rule as ours: one per interval, the rest counted and reported with the next."""

    def __init__(self, path_part: str, interval: float = 5.0) -> None:
        super().__init__()
        self.path_part, self.interval = path_part, interval
        self._last = -math.inf
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.path_part not in record.pathname:
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        if self._suppressed:
            record.msg = f"{record.msg} ({self._suppressed} more ignored)"
        self._last, self._suppressed = now, 0
        return True

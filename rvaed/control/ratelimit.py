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

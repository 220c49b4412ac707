"""The session secret: what a remote client shows to be let at files (uploads, training, model
switches, captures), where a source address proves nothing.

The daemon makes one at start and prints it: a key (carried by the page's URL, ``?key=``) and
a short pairing code a musician types on a phone instead. Comparisons take constant time; a
wrong code counts, and after ``MAX_TRIES`` wrong codes the code is replaced (the daemon logs
the new one), so guessing six digits over the network is hopeless.
"""

import hmac
import secrets
from dataclasses import dataclass, field

MAX_TRIES = 10
CODE_DIGITS = 6


def matches(candidate: object, secret: str) -> bool:
    """True when ``candidate`` is the string ``secret`` (constant time; no secret: False)."""
    return bool(secret) and isinstance(candidate, str) and hmac.compare_digest(
        candidate.encode(), secret.encode())


def _code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


@dataclass
class SessionSecret:
    """One run's key and pairing code."""

    key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    code: str = field(default_factory=_code)
    wrong: int = 0

    def valid(self, candidate: object) -> bool:
        """True when ``candidate`` is the key (any other type or value, or no key: False)."""
        return matches(candidate, self.key)

    def pair(self, code: object) -> str | None:
        """The key for the right pairing code; None (and one try used up) otherwise."""
        if self.key and matches(code.strip() if isinstance(code, str) else code, self.code):
            self.wrong = 0
            return self.key
        self.wrong += 1
        if self.wrong >= MAX_TRIES:
            self.code, self.wrong = _code(), 0
        return None

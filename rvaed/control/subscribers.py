"""Who gets OSC feedback: only receivers that proved they asked for it, each on a byte budget.

UDP source addresses are forgeable, so a subscription asked for in one datagram would let
anyone aim the daemon's feedback at a victim (reflection, amplified: the state is ~100 times
the request). Instead a subscription is a handshake, like a TCP SYN cookie:

1. ``/rvaed/subscribe [PORT]`` → the daemon answers one small ``/rvaed/hello NONCE`` (a string)
   to the sender's IP at PORT (default: the sending port). Nothing else, and no more bytes
   than the request plus a few.
2. ``/rvaed/subscribe/confirm NONCE`` from the same IP (any port) → the subscription is live:
   feedback flows to IP:PORT, the full state first.
3. Every `RENEW_EVERY` seconds the daemon sends each live subscriber a fresh hello; echoing it
   (step 2 again) keeps the subscription, which ends `LIFETIME` seconds after its last echo.
   ``/rvaed/unsubscribe NONCE`` (a recent hello's) ends it at once.

The nonce is a keyed hash of IP, port and a time window (`nonce`), so pending handshakes hold
no state and cannot fill a table. Live subscriptions are never evicted: when `MAX_SUBSCRIBERS`
are live (or `MAX_PER_HOST` from one IP) a new one is refused until one ends. Each subscriber
has a byte budget (`BYTES_PER_SECOND`); what the budget does not allow now is sent later, and
only the newest value of each address, so a slow budget lags but never queues.
"""

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field

from rvaed.control.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Client = tuple[str, int]

WINDOW = 30.0  # seconds: a nonce is valid in the window it was made in and the next one
LIFETIME = 60.0  # a subscription ends this long after its last confirm
RENEW_EVERY = 20.0  # a fresh hello to each live subscriber this often
MAX_SUBSCRIBERS = 16
MAX_PER_HOST = 4
BYTES_PER_SECOND = 32768  # feedback budget of each subscriber
BURST_BYTES = 16384


@dataclass
class Subscriber:
    """One live subscription: where feedback goes and what it was last sent."""

    client: Client
    expires: float
    hello_at: float
    budget: TokenBucket = field(
        default_factory=lambda: TokenBucket(BYTES_PER_SECOND, BURST_BYTES))
    sent: dict[str, bytes] = field(default_factory=dict)  # address -> last datagram sent
    replies: dict[str, bytes] = field(default_factory=dict)  # answers waiting for budget
    behind: bool = True  # something is still to send (new, reset or over budget)
    bytes_sent: int = 0

    def due(self, current: dict[str, bytes]) -> list[tuple[str, bytes]]:
        """Replies, then every message that differs from what this subscriber last got,
        smallest first (so x/y and the controls never wait behind the pattern grid)."""
        changed = [(a, d) for a, d in current.items() if self.sent.get(a) != d]
        return [*self.replies.items(), *sorted(changed, key=lambda item: len(item[1]))]


class Subscriptions:
    """The live subscribers, and the nonces that admit new ones."""

    def __init__(self) -> None:
        self.live: dict[Client, Subscriber] = {}
        self._key = secrets.token_bytes(16)

    def nonce(self, client: Client, window: int | None = None) -> str:
        """The hello's nonce for ``client``: its port, the window, a 40-bit keyed hash."""
        window = _window() if window is None else window
        digest = hmac.new(self._key, f"{client[0]}|{client[1]}|{window}".encode(),
                          hashlib.sha256).hexdigest()
        return f"{client[1]:04x}{window % 16:x}{digest[:10]}"

    def verify(self, host: str, nonce: object) -> Client | None:
        """The subscription ``nonce`` was made for, if it is one of ``host``'s and recent."""
        if not isinstance(nonce, str) or len(nonce) != 15:
            return None
        try:
            client = (host, int(nonce[:4], 16))
        except ValueError:
            return None
        now = _window()
        return next((client for window in (now, now - 1)
                     if hmac.compare_digest(self.nonce(client, window), nonce)), None)

    def confirm(self, client: Client) -> bool:
        """Make ``client`` live or renew it; False (with the reason logged) when full."""
        now = time.monotonic()
        if client in self.live:
            self.live[client].expires = now + LIFETIME
            return False
        if len(self.live) >= MAX_SUBSCRIBERS or len(self.of_host(client[0])) >= MAX_PER_HOST:
            raise ValueError(f"/rvaed/subscribe/confirm: refused {client[0]}:{client[1]}, "
                             f"{len(self.live)} subscribers live (at most {MAX_SUBSCRIBERS}, "
                             f"{MAX_PER_HOST} per host)")
        self.live[client] = Subscriber(client, now + LIFETIME, now)
        log.info("OSC: %s:%d subscribed", *client)
        return True

    def of_host(self, host: str) -> list[Subscriber]:
        return [s for s in self.live.values() if s.client[0] == host]

    def end(self, client: Client, why: str) -> None:
        if self.live.pop(client, None) is not None:
            log.info("OSC: %s:%d unsubscribed (%s)", client[0], client[1], why)

    def expire(self) -> list[Client]:
        """End the subscriptions not renewed in time; the clients due a fresh hello."""
        now = time.monotonic()
        for client in [c for c, s in self.live.items() if s.expires <= now]:
            self.end(client, f"no confirm for {LIFETIME:g} s")
        due = [s for s in self.live.values() if s.hello_at + RENEW_EVERY <= now]
        for subscriber in due:
            subscriber.hello_at = now
        return [s.client for s in due]


def _window() -> int:
    return int(time.monotonic() // WINDOW)

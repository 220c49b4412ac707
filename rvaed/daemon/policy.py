"""Guard the OSC commands that touch files: who may send them, and which paths they may name.

OSC listens on the network so a phone can play; anyone who reaches the port can move x/y. A
command that reads or writes files (train, load a model, capture, groove from a file) is only
obeyed when it carries the daemon's secret as its first argument (`FilePolicy.admit`): a UDP
source address proves nothing on a LAN, where it can be forged. The sender must also be in
the allowlist (``osc.allow``, default this machine) — a narrowing, not the proof. Every path
a command names must resolve — after following symlinks — inside one of the configured data
directories, with no ``..`` anywhere and within the size limits. The daemon holds one policy
for its whole run and `update` changes it in place on SIGHUP, so every guard made from it
obeys the new allowlist at once.

The secret is one definition for every remote surface (OSC and the web page's session):
`session_secret` — ``osc.secret`` from the config, else a random one the daemon keeps in
`SECRET_FILE` in its state directory (mode 0600, made at the first start). `FilePolicy.secret`
holds it, `FilePolicy.authentic` checks a candidate in constant time. It is never logged;
the log names the file. On the daemon's own machine the CLI uses the local socket
(rvaed.daemon.localsocket) and needs no secret.
"""

import ipaddress
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rvaed.control.osc import sender_address
from rvaed.core.atomic import write_new
from rvaed.core.errors import RvaedError
from rvaed.core.secret import matches
from rvaed.daemon.config import DaemonConfig

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SECRET_FILE = "secret"


def secret_path(config: DaemonConfig) -> Path:
    return config.dirs.state / SECRET_FILE


def session_secret(config: DaemonConfig) -> str:
    """The secret remote senders prove themselves with: ``osc.secret``, else the one kept in
    the state directory (made, mode 0600, when there is none yet)."""
    if config.osc.secret:
        return config.osc.secret
    path = secret_path(config)
    kept = _read_secret(path)
    if not kept:  # mkstemp's file is 0600, and write_new never replaces one made meanwhile
        try:
            write_new(path.parent, iter([path.name]),
                      (secrets.token_urlsafe(12) + "\n").encode())
        except OSError as exc:
            log.warning("%s: cannot keep a secret (%s): remote commands that touch files are "
                        "refused until it can", path, exc.strerror or exc)
            return ""
        kept = _read_secret(path)
    return kept


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s: cannot read the secret (%s): remote commands that touch files are "
                    "refused until it can", path, exc)
        return ""


def parse_allowlist(entries: Iterable[str]) -> tuple[Network, ...]:
    """Networks from addresses or CIDR networks (validated already in the config)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def sender_allowed(host: str, allow: Sequence[Network]) -> bool:
    """True when the sender address ``host`` lies in one of the ``allow`` networks.

    IPv4-mapped IPv6 senders (``::ffff:127.0.0.1``, what a dual-stack socket reports for an
    IPv4 client) count as their IPv4 address; a zone (``fe80::1%eth0``) is ignored.
    Anything that is not an IP address is refused.
    """
    address = sender_address(host)
    return address is not None and any(address.version == net.version and address in net
                                       for net in allow)


@dataclass
class FilePolicy:
    """Who may send file-touching commands, which directories they may use, how much."""

    roots: tuple[Path, ...]
    allow: tuple[Network, ...]
    max_file_bytes: int
    max_request_bytes: int
    secret: str = ""  # none: no remote sender is admitted

    @classmethod
    def from_config(cls, config: DaemonConfig) -> "FilePolicy":
        return cls(config.dirs.all(), parse_allowlist(config.osc.allow),
                   config.limits.max_file_bytes, config.limits.max_request_bytes,
                   session_secret(config))

    def update(self, config: DaemonConfig) -> None:
        """Take the allowlist, data directories and limits of ``config`` from now on."""
        vars(self).update(vars(FilePolicy.from_config(config)))

    def sender_allowed(self, host: str) -> bool:
        return sender_allowed(host, self.allow)

    def authentic(self, candidate: object) -> bool:
        """``candidate`` is the secret (compared in constant time)."""
        return matches(candidate, self.secret)

    def admit(self, address: str, host: str, args: tuple) -> tuple:
        """The arguments of a file command after its leading secret, if ``host`` is allowed
        and the secret is right; a one-line RvaedError otherwise."""
        if not self.sender_allowed(host):
            raise RvaedError(f"refused from {host} (not in osc.allow)")
        if not args or not self.authentic(args[0]):
            raise RvaedError(f"refused from {host}: expected the secret as the first argument "
                             f"({address} SECRET ...)")
        return tuple(args[1:])

    def resolve(self, user_path: str, base: Path, must_exist: bool = True) -> Path:
        """The real path ``user_path`` names, relative to ``base`` unless absolute.

        Refused with a one-line `RvaedError`: ``..`` components, NUL bytes, anything that
        resolves (symlinks followed) outside every root, a missing file when ``must_exist``,
        and a file larger than ``max_file_bytes``.
        """
        if not user_path or "\0" in user_path:
            raise RvaedError(f"refused path {user_path!r}: expected a file name")
        if ".." in Path(user_path).parts:
            raise RvaedError(f"refused path {user_path!r}: '..' is not allowed")
        real = (Path(base) / user_path).resolve()
        if not any(real.is_relative_to(root.resolve()) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots)
            raise RvaedError(f"refused path {user_path!r}: outside the data directories "
                             f"({allowed})")
        try:
            exists, regular = real.exists(), real.is_file()
        except OSError as exc:  # a name longer than the file system takes (ENAMETOOLONG)
            raise RvaedError(f"refused path {user_path[:60]!r}... ({len(user_path)} "
                             f"characters): {exc.strerror or exc}") from None
        if must_exist and not exists:
            raise RvaedError(f"no such file: {user_path!r}")
        if regular:
            self.check_size(real)
        return real

    def check_size(self, path: Path) -> int:
        """The size of ``path``; over ``max_file_bytes`` is an error."""
        size = os.stat(path).st_size
        if size > self.max_file_bytes:
            raise RvaedError(f"{path.name}: {size} bytes, more than limits.max_file_bytes "
                             f"({self.max_file_bytes})")
        return size

    def check_request(self, files: Iterable[Path]) -> None:
        """Every file within ``max_file_bytes`` and all together within ``max_request_bytes``."""
        total = sum(self.check_size(path) for path in files)
        if total > self.max_request_bytes:
            raise RvaedError(f"request of {total} bytes, more than limits.max_request_bytes "
                             f"({self.max_request_bytes})")

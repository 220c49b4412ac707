"""The README's set-up and Raspberry Pi steps, run as written in a fresh Debian bookworm.

A minimal bookworm made by debootstrap (cached: built once, copied for every run) stands in
for a new Raspberry Pi OS Lite or a Debian laptop: a user `pi` with sudo, systemd installed
but not running (a chroot), nothing else. Into it go this checkout (`git archive HEAD`) as
~/rvaed, the host's CA bundle (the package registries are reached through the host's TLS) and
the host's pip configuration and local wheel folders (on this machine they serve torch's CPU
build). Then each README command runs as written, timed; the venv sizes are measured.
Needs root, debootstrap and the package registries (run it outside the test namespace):

    sudo python tests/support/bookworm.py          # prints the times and sizes
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from readme import Command, in_section

CACHE = Path(os.environ.get("RVAED_CHROOT_CACHE", "/var/cache/rvaed-tests"))
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "sudo,systemd,ca-certificates,python3"
SOURCES = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
CA = Path("/etc/ssl/certs/ca-certificates.crt")
REPO = Path(__file__).resolve().parents[2]
HOME = "/home/pi"
ENV = {"HOME": HOME, "USER": "pi", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
       "PATH": f"{HOME}/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       }


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, text=True, **kwargs)


def host_pip() -> tuple[str, list[Path]]:
    """The host's pip settings (files and PIP_* variables) as one pip.conf, and the local
    files and folders they name; ``retries = 0``: an index this machine cannot reach fails at
    once rather than in five tries for every package (sudo would drop a variable)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    settings = {"retries": "0"}
    for line in listed:
        key, _, value = line.partition("=")
        settings[key.rpartition(".")[2]] = value.strip("'")
    local = {Path(word.removeprefix("file://")) for value in settings.values()
             for word in value.split() if word.startswith(("/", "file:///"))}
    local = {path.parent if path.name == "simple" else path for path in local}  # its files too
    conf = "[global]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items())
    return conf, sorted(path for path in local if path.exists())


def base() -> Path:
    """The cached bookworm: debootstrap minbase, apt lists, a user pi who may sudo."""
    root = CACHE / "bookworm-base"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
         str(root), MIRROR], stdout=subprocess.DEVNULL)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(SOURCES)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/sudoers.d/pi").write_text("pi ALL=(ALL) NOPASSWD: ALL\n")
    with mounted(root):
        chroot(root, "apt-get update -qq && useradd -m -s /bin/bash pi", user="root")
    (root / ".complete").touch()
    return root


def fresh(work: Path) -> Path:
    """A copy of the cached bookworm with this checkout in ~pi/rvaed."""
    root = work / "root"
    run(["cp", "-a", str(base()), str(root)])
    (root / ".complete").unlink()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    for folder in ("rvaed", "src/rvaed"):  # the Pi's copy (root builds in it), and the user's
        source = root / HOME.lstrip("/") / folder
        source.mkdir(parents=True)
        run(["tar", "-x", "-C", str(source)], input=archive.decode("latin-1"),
            encoding="latin-1")
    run(["chown", "-R", "1000:1000", str(root / HOME.lstrip("/"))])
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    name = (root / "etc/hostname").read_text().strip() if (root / "etc/hostname").exists() \
        else "localhost"
    with open(root / "etc/hosts", "a") as hosts:  # sudo looks its host name up
        hosts.write(f"127.0.1.1 {name} {os.uname().nodename}\n")
    return root


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/proc, /dev and the caches (apt's archives, pip's wheels) and the host's pip folders,
    unmounted again on the way out."""
    caches = {CACHE / "apt-archives": root / "var/cache/apt/archives",
              CACHE / "pip-root": root / "root/.cache/pip",
              CACHE / "pip-pi": root / HOME.lstrip("/") / ".cache/pip"}
    conf, local = host_pip()
    (root / "etc/pip.conf").write_text(conf)
    for path in (p for p in local if p.is_file()):
        (root / path.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, root / path.relative_to("/"))
    binds = [(Path("/dev"), root / "dev"), *caches.items(),
             *[(p, root / p.relative_to("/")) for p in local if p.is_dir()]]
    done: list[Path] = []
    try:
        run(["mount", "-t", "proc", "proc", str(root / "proc")])
        done.append(root / "proc")
        for source, target in binds:
            source.mkdir(parents=True, exist_ok=True)
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", "--bind", str(source), str(target)])
            done.append(target)
        run(["chown", "-R", "1000:1000", str(CACHE / "pip-pi"), str(root / HOME.lstrip("/"))])
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def chroot(root: Path, script: str, user: str = "pi", cwd: str = HOME,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run ``script`` with bash in the chroot as ``user`` from ``cwd`` (output captured)."""
    shutil.copy(CA, root / "etc/ssl/certs/ca-certificates.crt")  # apt may have rewritten it
    env = [f"{k}={v}" for k, v in {**ENV, **({"HOME": "/root", "USER": "root"}
                                             if user == "root" else {})}.items()]
    argv = ["chroot", "--userspec", "1000:1000" if user == "pi" else "0:0", str(root),
            "/usr/bin/env", "-i", *env, "/bin/bash", "-c", f"cd {cwd} && {script}"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"in bookworm, `{script}` exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def timed(root: Path, commands: list[Command], cwd: str) -> dict[str, float]:
    """Run README commands one after another; seconds each, by command."""
    seconds = {}
    for command in commands:
        started = time.monotonic()
        chroot(root, command.text, cwd=cwd)
        seconds[command.text] = round(time.monotonic() - started, 1)
    return seconds


def size_mb(root: Path, folder: str) -> float:
    out = subprocess.run(["du", "-sm", str(root / folder.lstrip("/"))], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[0])


if __name__ == "__main__":
    import tempfile

    from readme import commands as all_commands

    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = fresh(Path(work))
        with mounted(root):
            figures = {"pi": timed(root, in_section("Install on Raspberry Pi OS (64-bit)"),
                                   HOME)}
            figures["pi_venv_mb"] = size_mb(root, "/opt/rvaed")
        print(json.dumps(figures, indent=2))
    sys.exit(0 if all_commands() else 1)

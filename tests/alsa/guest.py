"""Run the ALSA tests against a real ALSA sequencer: a small Debian guest under qemu.

The build machines have no /dev/snd, so the ALSA tests run in a Debian bookworm guest whose
kernel gives them snd-seq-dummy and snd-virmidi (unbinding snd_virmidi's platform device is a
cable pull). The guest image is built once from Debian's packages (debootstrap, then the
project's dependencies pip-installed from a chroot with the host's pip configuration) and
cached under ~/.cache/rvaed-alsa-guest, keyed by what goes into it. Every run copies the
checkout in on a second disk, so the version under test is always this tree; the guest
installs it, runs tests/alsa/inside.sh and powers off. The console comes back on the serial
port (printed here as it arrives), the pytest result on the second disk.

Usage: python3 tests/alsa/guest.py [--build-only] [--rebuild] [-- pytest args]
Needs root (debootstrap, chroot, bind mounts), debootstrap, qemu-system-x86_64, mkfs.ext4 and
debugfs (e2fsprogs). qemu runs under TCG (-accel tcg): nested KVM does not boot here, and
emulated time means nothing, so the tests count events and check their order, never times.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("RVAED_ALSA_CACHE", Path.home() / ".cache" / "rvaed-alsa-guest"))
FORMAT = 1  # bump when the image layout below changes
SUITE = "bookworm"
PACKAGES = ["linux-image-amd64", "systemd-sysv", "python3-venv", "alsa-utils", "udev", "kmod",
            "libstdc++6", "libatomic1", "e2fsprogs"]
GUEST_PIP = ["pytest>=8", "hypothesis>=6", "setuptools>=70", "wheel"]
VENV = "/opt/rvaed/venv"
PIP_CONFIGS = ["/etc/pip.conf", "/etc/xdg/pip", str(Path.home() / ".config" / "pip")]
GUEST_TIMEOUT_S = float(os.environ.get("RVAED_ALSA_TIMEOUT_S", 3600))

UNIT = """[Unit]
Description=rvaed ALSA tests (the disk /dev/vdb carries the checkout and takes the results)
After=local-fs.target systemd-udevd.service systemd-modules-load.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rvaed-alsa-run
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
"""

# The image's only fixed code: mount the run's disk, hand over to the checkout's script.
RUNNER = """#!/bin/sh
mkdir -p /mnt/rvaed && mount /dev/vdb /mnt/rvaed || { echo "RVAED-ALSA-RC=98"; poweroff -f; }
sh /mnt/rvaed/src/tests/alsa/inside.sh
echo "RVAED-ALSA-RC=$?"
umount /mnt/rvaed; sync
poweroff -f
"""


def log(message: str) -> None:
    """One progress line on stderr, with the elapsed minutes."""
    print(f"guest: [{(time.monotonic() - START) / 60:5.1f} min] {message}", file=sys.stderr,
          flush=True)


START = time.monotonic()


def mirror() -> str:
    """The Debian mirror this machine's apt uses (deb.debian.org when none is found)."""
    found = []
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        with contextlib.suppress(OSError):
            found += re.findall(r"(?:URIs:|deb)\s+(\S+/debian)\s", path.read_text() + "\n")
    return found[0] if found else "http://deb.debian.org/debian"


def project_requirements() -> list[str]:
    """The project's runtime dependencies (pyproject.toml) plus what the guest runs tests with."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return [*tomllib.load(f)["project"]["dependencies"], *GUEST_PIP]


def cache_key() -> str:
    """What the image is made of: a change to any of it builds a new one."""
    parts = {"format": FORMAT, "suite": SUITE, "mirror": mirror(), "packages": PACKAGES,
             "pip": project_requirements(), "unit": UNIT, "runner": RUNNER}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def run(*cmd: str, **kw) -> None:
    """Run a command, failing loudly with its name."""
    subprocess.run(cmd, check=True, **kw)


@contextlib.contextmanager
def chroot_mounts(root: Path) -> Iterator[None]:
    """/proc, /sys, /dev and the host's local wheel folders inside the chroot, for pip."""
    binds = ["/dev", "/proc", "/sys"] + [p for p in ("/opt/wheels", "/opt/pypi", "/opt/pypi-more")
                                         if Path(p).is_dir()]
    done: list[Path] = []
    try:
        for src in binds:
            target = root / src.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            run("mount", "--bind", src, str(target))
            done.append(target)
            if src.startswith("/opt"):
                run("mount", "-o", "remount,bind,ro", str(target))
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def copy_host_config(root: Path) -> None:
    """The host's CA bundle (its registries use their own CA), resolver and pip configuration."""
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf", follow_symlinks=True)
    for source in map(Path, PIP_CONFIGS):
        target = root / str(source).lstrip("/")
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def install_python(root: Path) -> None:
    """A venv with the project's dependencies, pip-installed in the chroot from the registry."""
    copy_host_config(root)
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    env |= {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    with chroot_mounts(root):
        run("chroot", str(root), "python3", "-m", "venv", VENV, env=env)
        run("chroot", str(root), f"{VENV}/bin/pip", "install", "-q", "--upgrade", "pip", env=env)
        run("chroot", str(root), f"{VENV}/bin/pip", "install", "-q", *project_requirements(),
            env=env)


def configure(root: Path) -> None:
    """Boot straight into the test unit: no login prompts, no network, a hostname."""
    (root / "etc/hostname").write_text("rvaed-alsa\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,noatime 0 1\n")
    (root / "etc/systemd/system/rvaed-alsa-tests.service").write_text(UNIT)
    runner = root / "usr/local/sbin/rvaed-alsa-run"
    runner.write_text(RUNNER)
    runner.chmod(0o755)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        (wants / "rvaed-alsa-tests.service").symlink_to("../rvaed-alsa-tests.service")
    for unit in ("serial-getty@ttyS0.service", "getty@tty1.service", "apt-daily.timer",
                 "apt-daily-upgrade.timer", "systemd-timesyncd.service", "e2scrub_reap.service"):
        target = root / "etc/systemd/system" / unit
        with contextlib.suppress(FileExistsError):
            target.symlink_to("/dev/null")


def make_disk(source: Path, image: Path, spare_mb: int) -> None:
    """An ext4 image holding a folder (mkfs.ext4 -d), with room to spare for the run."""
    used = subprocess.run(["du", "-sm", str(source)], check=True, capture_output=True,
                          text=True).stdout.split()[0]
    size = int(used) * 12 // 10 + spare_mb
    image.unlink(missing_ok=True)
    run("mkfs.ext4", "-q", "-F", "-L", image.stem, "-d", str(source), str(image), f"{size}M")


def remove_tree(tree: Path) -> None:
    """Delete a chroot tree, never while anything (the host's /dev ...) is mounted in it."""
    mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
               if line.split()[1].startswith(str(tree))]
    if mounted:
        raise SystemExit(f"guest: still mounted in {tree}: {mounted}; not deleting it")
    shutil.rmtree(tree)


def build(target: Path) -> None:
    """debootstrap, Python, configuration; then the disk image, kernel and initrd in the cache."""
    work = target.with_name(target.name + ".building")
    if work.exists():
        remove_tree(work)
    rootfs = work / "root"
    rootfs.mkdir(parents=True)
    log(f"debootstrap {SUITE} from {mirror()} ({', '.join(PACKAGES)})")
    run("debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
        str(rootfs), mirror(), stdout=subprocess.DEVNULL)
    log("pip-installing the project's dependencies in the chroot")
    install_python(rootfs)
    configure(rootfs)
    boot = rootfs / "boot"
    shutil.copy2(sorted(boot.glob("vmlinuz-*"))[-1], work / "vmlinuz")
    shutil.copy2(sorted(boot.glob("initrd.img-*"))[-1], work / "initrd.img")
    (rootfs / "var/cache/apt/archives").mkdir(parents=True, exist_ok=True)
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    log("making the root disk image")
    make_disk(rootfs, work / "root.img", spare_mb=512)
    remove_tree(rootfs)
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    for old in CACHE.iterdir():  # images of other keys: only files, nothing mounted
        if old != target and not old.name.endswith(".building"):
            shutil.rmtree(old)


def image() -> Path:
    """The cached guest for this key, built when missing."""
    target = CACHE / cache_key()
    if not (target / "root.img").is_file():
        started = time.monotonic()
        build(target)
        log(f"guest built in {(time.monotonic() - started) / 60:.1f} min: {target}")
    else:
        log(f"cached guest {target}")
    return target


def stage_checkout(dest: Path, pytest_args: list[str]) -> None:
    """This checkout (as it is now, uncommitted changes included) and the pytest arguments."""
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".mypy_cache",
                                    ".ruff_cache", ".pytest_cache", "build", "dist", ".venv")
    shutil.copytree(ROOT, dest / "src", ignore=ignore, symlinks=True)
    (dest / "out").mkdir()
    (dest / "pytest-args").write_text("\n".join(pytest_args) + ("\n" if pytest_args else ""))


def qemu_command(guest: Path, io_disk: Path) -> list[str]:
    """TCG, no network, the cached root disk read-only under a throw-away overlay.

    -cpu max: numpy and onnxruntime wheels use instructions (SSE4, AVX) that qemu's default
    CPU model lacks ("Illegal instruction"); TCG emulates them with the max model.
    """
    return ["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1536", "-smp", "1",
            "-nic", "none", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-monitor", "none",
            "-kernel", str(guest / "vmlinuz"), "-initrd", str(guest / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 loglevel=4 systemd.show_status=0 "
                       "panic=-1 net.ifnames=0",
            "-drive", f"file={guest / 'root.img'},if=virtio,format=raw,snapshot=on",
            "-drive", f"file={io_disk},if=virtio,format=raw"]


def boot(guest: Path, io_disk: Path) -> int:
    """Boot the guest, echo its console, return the test run's exit code (from the console)."""
    proc = subprocess.Popen(qemu_command(guest, io_disk), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True, errors="replace")
    assert proc.stdout is not None
    code = 99
    deadline = time.monotonic() + GUEST_TIMEOUT_S
    try:
        for line in proc.stdout:
            print(f"  | {line.rstrip()}", flush=True)
            if match := re.search(r"RVAED-ALSA-RC=(\d+)", line):
                code = int(match.group(1))
            if time.monotonic() > deadline:
                log(f"guest still running after {GUEST_TIMEOUT_S / 60:.0f} min: stopped")
                break
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        proc.wait()
    return code


def fetch(io_disk: Path, dest: Path) -> None:
    """Copy the run's out/ folder off its disk without mounting it (debugfs)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debugfs", "-R", f"rdump /out {dest}", str(io_disk)], check=False,
                   capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-only", action="store_true", help="build (or find) the image")
    parser.add_argument("--rebuild", action="store_true", help="build the image anew")
    parser.add_argument("--results", type=Path,
                        help="copy the guest's out/ here (junit.xml, guest.log, tmp/)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest inside the guest")
    args = parser.parse_args()
    if args.rebuild:
        shutil.rmtree(CACHE / cache_key(), ignore_errors=True)
    guest = image()
    if args.build_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="rvaed-alsa-") as tmp:
        staging, io_disk = Path(tmp) / "io", Path(tmp) / "io.img"
        staging.mkdir()
        stage_checkout(staging, args.pytest_args)
        make_disk(staging, io_disk, spare_mb=256)
        log("booting the guest (TCG: minutes)")
        started = time.monotonic()
        code = boot(guest, io_disk)
        log(f"guest ran {(time.monotonic() - started) / 60:.1f} min, tests exit code {code}")
        if args.results:
            fetch(io_disk, args.results)
            log(f"results in {args.results / 'out'}")
        fetch(io_disk, Path(tmp))
        log(f"results: {summary(Path(tmp) / 'out' / 'junit.xml')}")
    return code


def summary(junit: Path) -> str:
    """tests/failures/errors/skipped from a junit file."""
    if not junit.is_file():
        return "no junit.xml: the tests did not run (see the console above)"
    text = junit.read_text()
    found = re.search(r"<testsuite [^>]*>", text)
    return found.group(0) if found else "no testsuite in junit.xml"


if __name__ == "__main__":
    sys.exit(main())

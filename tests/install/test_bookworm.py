"""The README's set-up and Raspberry Pi steps, as written, in a fresh Debian bookworm chroot
(tests/support/bookworm.py): they install a service that starts as its own user and can
train, and the play-only install says in one line what training needs.

Slow (minutes; the chroot is built once and cached) and it needs root, debootstrap and the
package registries, so it runs only when asked, outside the loopback-only namespace:

    sudo RVAED_INSTALL_TEST=1 python -m pytest -s tests/install

The Pi steps run on amd64 here; Raspberry Pi OS is bookworm on arm64, with the same packages.
"""

import os
import shutil

import pytest
from bookworm import CACHE, HOME, chroot, fresh, mounted, size_mb, timed
from readme import Command, in_section

PI = "Install on Raspberry Pi OS (64-bit)"
NOT_IN_CHROOT = {  # README commands of these sections that this test does not run, and why
    "scp *.mid pi@raspberrypi.local:/var/lib/rvaed/inbox/": "copies from a laptop to a Pi",
    "rvaed run -v": "runs until stopped; tests/test_readme.py plays it on a JACK server",
    "bash tests/run": "the whole test suite, which contains this test",
    "sudo systemctl daemon-reload": "needs a booted systemd, which a chroot has not",
}
INSTEAD = {  # README command -> what runs in the chroot in its place, and why
    "sudo systemctl enable --now rvaed": ("sudo systemctl enable rvaed", "starting needs a "
                                          "booted systemd; the unit is verified instead"),
}
FILES = "rvaed/tests/data/groove/drummer1/session1/*.mid"
TRAIN = f"train {FILES} --epochs 2 --hidden 32 16 --threads 1"

pytestmark = pytest.mark.skipif(
    os.environ.get("RVAED_INSTALL_TEST") != "1" or os.geteuid() != 0
    or shutil.which("debootstrap") is None or os.environ.get("RVAED_TEST_NETNS") == "1",
    reason="the install test runs on request: as root, with debootstrap, outside the test "
           "namespace: RVAED_INSTALL_TEST=1 python -m pytest tests/install")


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory):
    CACHE.mkdir(parents=True, exist_ok=True)
    root = fresh(tmp_path_factory.mktemp("bookworm", numbered=True))
    with mounted(root):
        yield root
    shutil.rmtree(root, ignore_errors=True)


def steps(section: str) -> list[Command]:
    """The section's commands as the chroot runs them (NOT_IN_CHROOT left out, INSTEAD)."""
    wanted = [c for c in in_section(section) if plain(c.text) not in NOT_IN_CHROOT]
    return [Command(c.section, INSTEAD.get(plain(c.text), (c.text,))[0]) for c in wanted]


def plain(text: str) -> str:
    return text.split("  #")[0].strip()


def test_the_pi_steps_install_a_service_that_starts_as_its_user_and_trains(bookworm):
    seconds = timed(bookworm, steps(PI), HOME)
    print(f"\nPi steps in bookworm: {seconds}; /opt/rvaed {size_mb(bookworm, '/opt/rvaed')} MB")
    groups = chroot(bookworm, "id -nG rvaed").stdout.split()
    assert groups[0] == "rvaed" and "audio" in groups
    wants = bookworm / "etc/systemd/system/multi-user.target.wants/rvaed.service"
    assert wants.is_symlink() and (bookworm / "opt/rvaed/bin/rvaed").exists()
    verify = chroot(bookworm, "systemd-analyze verify /etc/systemd/system/rvaed.service",
                    user="root", check=False)
    assert "rvaed.service" not in verify.stderr.replace("/etc/systemd/system/rvaed.service:", ""), \
        verify.stderr
    inbox = chroot(bookworm, "stat -c '%a %U %G' /var/lib/rvaed/inbox").stdout.split()
    assert inbox == ["2770", "rvaed", "rvaed"]
    trained = chroot(bookworm, f"sudo -u rvaed /opt/rvaed/bin/rvaed {TRAIN} -o /tmp/model")
    assert "model written to /tmp/model" in trained.stdout


def test_the_set_up_trains_and_the_play_only_install_says_what_to_install(bookworm):
    commands = steps("Set up")
    full = [c for c in commands if "[train]" in c.text or "ln -sf" in c.text]
    slim = [c for c in commands if c not in full]
    assert len(full) == 2 and len(slim) == 1, commands
    seconds = timed(bookworm, full, f"{HOME}/src/rvaed")
    full_mb = size_mb(bookworm, f"{HOME}/.local/rvaed")
    trained = chroot(bookworm, f"cd {HOME} && rvaed {TRAIN} -o {HOME}/model")
    assert f"model written to {HOME}/model" in trained.stdout
    chroot(bookworm, f"rm -rf {HOME}/.local/rvaed")
    seconds.update(timed(bookworm, slim, f"{HOME}/src/rvaed"))
    slim_mb = size_mb(bookworm, f"{HOME}/.local/rvaed")
    print(f"\nset-up in bookworm: {seconds}; with training {full_mb} MB, play-only {slim_mb} MB")
    refused = chroot(bookworm, f"cd {HOME} && rvaed {TRAIN} -o {HOME}/model2", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("rvaed train: error: training needs torch")
    assert refused.stderr.count("\n") == 1
    played = chroot(bookworm, f"cd {HOME} && rvaed generate -o {HOME}/groove.mid")
    assert "hits from starter" in played.stdout

#!/usr/bin/env bash
# The ALSA tests, in a Debian guest under qemu (tests/alsa/guest.py): called by tests/run.
#
# Runs them when qemu, debootstrap and root are at hand; under CI=true installs what is
# missing and fails when it cannot (CI never passes by skipping a real ALSA sequencer).
# Outside CI, without them, says so and skips. The guest image is cached between runs
# (~/.cache/rvaed-alsa-guest). Extra arguments go to pytest inside the guest.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools=(qemu-system-x86_64 debootstrap mkfs.ext4 debugfs)
missing=()
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ $(id -u) != 0 ]]; then
    reason="not root (debootstrap, chroot and bind mounts need it)"
elif ((${#missing[@]})) && [[ ${CI:-} == true ]]; then
    echo "tests/alsa/run.sh: installing Debian packages for: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86 debootstrap e2fsprogs \
        >/dev/null
    reason=""
elif ((${#missing[@]})); then
    reason="missing ${missing[*]}"
else
    reason=""
fi
if [[ -n $reason ]]; then
    if [[ ${CI:-} == true ]]; then
        echo "tests/alsa/run.sh: the ALSA tests cannot run: $reason" >&2
        exit 1
    fi
    echo "tests/alsa/run.sh: ALSA guest tests skipped: $reason"
    exit 0
fi
exec python tests/alsa/guest.py -- "$@"

#!/bin/sh
# Inside the ALSA guest (run by its test unit, as root): load the sequencer's kernel parts,
# install this checkout, run the ALSA tests. The run's disk is mounted at /mnt/rvaed: src/ is
# the checkout, pytest-args the extra arguments, out/ takes junit.xml, guest.log and tmp/ (the
# tests' folders, the daemons' logs among them).
set -u
io=/mnt/rvaed
venv=/opt/rvaed/venv
out=$io/out
exec > "$out/guest.log.tmp" 2>&1 || exit 97
# everything also goes to the serial console, which the host prints as it arrives
tail -f "$out/guest.log.tmp" > /dev/ttyS0 &
tailer=$!
echo "guest: kernel $(uname -r), $(python3 -V)"
modprobe snd-seq-dummy && modprobe snd-virmidi || { echo "guest: no ALSA modules"; exit 96; }
ls -l /dev/snd/
cat /proc/asound/cards
cat /proc/asound/seq/clients
cd "$io/src" || exit 95
"$venv/bin/pip" install -q --no-index --no-deps --no-build-isolation -e . \
    > "$out/pip.log" 2>&1 || { cat "$out/pip.log"; exit 94; }
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < "$io/pytest-args"
RVAED_ALSA_GUEST=1 "$venv/bin/python" -m pytest -v -p no:cacheprovider \
    --junitxml="$out/junit.xml" --basetemp="$out/tmp" tests/alsa "$@"
code=$?
sleep 1
kill "$tailer"
mv "$out/guest.log.tmp" "$out/guest.log"
exit $code

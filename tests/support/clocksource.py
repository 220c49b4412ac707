"""A MIDI clock master for tests: a process sending 24 ppqn through JACK from an ideal grid.

argv: BPM, jitter (ms, uniform +-, seeded), ticks before Start, ticks after it, the tick at
which the tempo changes and the tempo it changes to. It prints "ready" once its JACK port
`clock-source` exists, waits for a line on stdin, plays, sends Stop and prints the ideal host
times (CLOCK_MONOTONIC_RAW, the one rvaed stamps with) of the ticks played after Start, as JSON.
"""

import textwrap

SOURCE = textwrap.dedent("""
    import json, os, random, sys, time, rtmidi
    try:  # a hardware master does not stall: keep this one from being descheduled if allowed
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(60))
    except OSError:
        pass
    bpm, jitter, pre, ticks, change_at, bpm2 = map(float, sys.argv[1:7])
    now = lambda: time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
    port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="clock-source")
    port.open_virtual_port("clock-source")
    print("ready", flush=True)
    sys.stdin.readline()
    rng = random.Random(7)
    t, period, played = now() + 0.2, 60 / (bpm * 24), []
    for k in range(int(pre + ticks)):
        if k == int(pre):  # Start half a tick before beat 0's tick (never in one JACK period)
            while now() < t - period / 2:
                time.sleep(0.0002)
            port.send_message([0xFA])
        if k - pre == change_at:
            period = 60 / (bpm2 * 24)
        due = t + rng.uniform(-jitter, jitter) / 1000
        while now() < due:
            time.sleep(0.0002) if due - now() > 0.002 else None
        port.send_message([0xF8])
        if k >= pre:
            played.append(t)
        t += period
    time.sleep(period / 2)
    port.send_message([0xFC])
    time.sleep(0.2)
    print(json.dumps(played), flush=True)
""")

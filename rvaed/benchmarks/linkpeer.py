"""Another Link app for tests and benchmarks: a process with its own Link object, driven line
by line (tempo, play/stop, a start a given time before a bar line).

Link multicasts on every interface: use it only inside a loopback-only network namespace (the
tests' link_network fixture; `rvaed bench linkedges` checks it).
"""

import subprocess
import sys
import textwrap
import time

PEER = textwrap.dedent("""
    import sys, time, link
    peer, q = link.Link(float(sys.argv[1])), float(sys.argv[2])
    peer.startStopSyncEnabled = True
    peer.enabled = True
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        state = peer.captureAppSessionState()
        t = peer.clock().micros()
        if command == "startbefore":  # start the transport args[0] ms before a bar line
            bar = (int(state.beatAtTime(t, q) // q) + 2) * q
            at = state.timeAtBeat(bar, q) - int(float(args[0]) * 1000)
            while peer.clock().micros() < at:
                time.sleep(0.0002)
            state = peer.captureAppSessionState()
            t = peer.clock().micros()
            state.setIsPlayingAndRequestBeatAtTime(True, t, 0.0, q)
        if command == "tempo":
            state.setTempo(float(args[0]), t)
        elif command == "play":
            state.setIsPlayingAndRequestBeatAtTime(args[0] == "1", t, 0.0, q)
        if command in ("tempo", "play", "startbefore"):
            peer.commitAppSessionState(state)
        print(t, state.beatAtTime(t, q), state.tempo(), int(state.isPlaying()),
              peer.numPeers(), flush=True)
""")


class Peer:
    """A Link peer at ``tempo`` with bars of ``quantum`` beats in its own process; `ask` sends
    one command and returns the peer's state right after it (its time in seconds on Link's
    clock, beat, tempo ...)."""

    def __init__(self, tempo: float, quantum: float = 4.0) -> None:
        self.quantum = quantum
        self.process = subprocess.Popen([sys.executable, "-c", PEER, str(tempo), str(quantum)],
                                        text=True, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in, self._out = self.process.stdin, self.process.stdout
        assert self._out.readline().strip() == "ready"

    def ask(self, command: str = "state") -> dict:
        self._in.write(command + "\n")
        self._in.flush()
        t, beat, tempo, playing, peers = self._out.readline().split()
        return {"time": int(t) / 1e6, "beat": float(beat), "tempo": float(tempo),
                "playing": playing == "1", "peers": int(peers)}

    def close(self) -> None:
        self._in.close()
        self.process.wait(5)


def eventually(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

"""A MIDI clock master bridged into a Link session: rvaed follows the hardware and leads Link.

Rigs whose master is a drum machine or a hardware sequencer: rvaed plays on the MIDI clock it
follows (`MidiClockIn`), and, with Link on, the session's tempo, beat and start/stop are
made the master's (`LinkClock.follow`, every `EVERY` seconds from a thread of its own) while
the master ticks, so Live and every other peer play in phase with the hardware (clock
conversion); a master switched off leaves the session as it was. The sequencer
never reads Link here: only the master's clock. The MIDI clock's song start (beat 0) is a bar
line of the session, so the master's bars are the session's bars.
"""

import threading

from rvaed.engine.clock import Timeline, TimelineClock
from rvaed.engine.linkclock import LinkClock
from rvaed.engine.midiclockin import MidiClockIn

EVERY = 0.01  # seconds between comparisons of the session with the master


class LinkBridge(TimelineClock):
    """The master's clock for the sequencer, Link's for peers and the Link switch."""

    def __init__(self, master: MidiClockIn, link: LinkClock) -> None:
        self.master = master
        self.session = link
        self.commits = 0  # how often the session was moved to the master
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link bridge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._quit.wait(EVERY):
            if self.session.link and self.master.ticking:
                self.commits += self.session.follow(self.master.timeline(),
                                                    self.master.steady_tempo)

    def timeline(self) -> Timeline:
        return self.master.timeline()

    @property
    def late_start(self) -> float:
        return self.master.late_start

    @property
    def tempo(self) -> float:
        return self.master.tempo

    @property
    def quantum(self) -> float:
        return self.master.quantum

    @property
    def playing(self) -> bool:
        return self.master.playing

    @property
    def peers(self) -> int:
        return self.session.peers

    @property
    def link(self) -> bool:
        return self.session.link

    def set_tempo(self, bpm: float) -> None:
        """The master sets the tempo: ignored, as by `MidiClockIn`."""

    def set_playing(self, playing: bool) -> None:
        """The master starts and stops: ignored, as by `MidiClockIn`."""

    def set_enabled(self, on: bool) -> None:
        """Link on or off; the music follows the master either way."""
        self.session.set_enabled(on)

    def close(self) -> None:
        self._quit.set()
        self._thread.join()
        self.master.close()
        self.session.close()

"""Reading the ALSA sequencer's subscriptions from the kernel's text (/proc/asound/seq/clients).

This machine has no ALSA sequencer, so the text here is written in the kernel's format
(sound/core/seq/seq_clientmgr.c, as a Debian bookworm guest with snd-seq-dummy and snd-virmidi
prints it, plus subscriptions); the real file is read by the tests in tests/alsa, inside the
ALSA guest (tests/alsa/guest.py).
"""

from rvaed.engine import alsaseq

CLIENTS = """Client info
  cur  clients : 5
  peak clients : 6
  max  clients : 192

Client   0 : "System" [Kernel]
  Port   0 : "Timer" (Rwe-)
  Port   1 : "Announce" (R-e-)
    Connecting To: 128:0
Client  14 : "Midi Through" [Kernel]
  Port   0 : "Midi Through Port-0" (RWe-)
    Connecting To: 129:0
    Connected From: 128:1
Client  16 : "Virtual Raw MIDI 0-0" [Kernel]
  Port   0 : "VirMIDI 0-0" (RWeX)
Client 128 : "rvaed" [User]
  Port   0 : "rvaed-watch" (-We-)
    Connected From: 0:1
  Port   1 : "to Midi Through:Midi Through Port-0 14:0" (R-e-)
    Connecting To: 14:0, 16:0[real:0]
  Output pool :
    Pool size          : 500
"""
DESTINATION = "Midi Through:Midi Through Port-0 14:0"
OURS = f"to {DESTINATION}"


def test_ports_and_their_subscriptions():
    ports = {port.address: port for port in alsaseq.parse(CLIENTS)}
    assert ports[(14, 0)] == alsaseq.Port((14, 0), "Midi Through", "Midi Through Port-0",
                                          frozenset({(129, 0)}))
    assert ports[(128, 1)].sends_to == {(14, 0), (16, 0)}
    assert ports[(16, 0)].sends_to == frozenset()
    assert ports[(0, 1)].client == "System"


def test_a_subscription_is_told_from_its_absence():
    ports = alsaseq.parse(CLIENTS)
    assert alsaseq.subscribed(OURS, DESTINATION, ports) is True
    cut = alsaseq.parse(CLIENTS.replace("14:0, 16:0[real:0]", "16:0"))
    assert alsaseq.subscribed(OURS, DESTINATION, cut) is False


def test_what_cannot_be_told_is_none():
    ports = alsaseq.parse(CLIENTS)
    assert alsaseq.subscribed(OURS, "system:midi_playback_1", ports) is None  # a JACK name
    assert alsaseq.subscribed("to elsewhere", DESTINATION, ports) is None  # no port of ours
    gone = "to VirMIDI 0-1:VirMIDI 0-1 17:0"  # the destination is not there at all
    assert alsaseq.subscribed(gone, "VirMIDI 0-1:VirMIDI 0-1 17:0", ports) is None
    assert alsaseq.address_of(DESTINATION) == (14, 0)


class Played:
    """Stands in for a connected output: there is no ALSA sequencer to open one on here (the
    guest's test_a_subscription_removed_from_outside_is_restored opens real ones)."""

    def __init__(self, name: str, connected: bool = True) -> None:
        self.name, self.connected, self.reasons = name, connected, []

    def reopen(self, reason: str) -> None:
        self.reasons.append(reason)


def test_the_watcher_reopens_only_an_output_whose_subscription_is_gone():
    cut = alsaseq.parse(CLIENTS.replace("14:0, 16:0[real:0]", "16:0"))
    kept, lost, away = Played(DESTINATION), Played(DESTINATION), Played(DESTINATION, False)
    virtual = Played("rvaed")
    assert alsaseq.SubscriptionWatcher(lambda: [kept]).check(alsaseq.parse(CLIENTS)) == []
    watcher = alsaseq.SubscriptionWatcher(lambda: [lost, away, virtual])
    assert watcher.check(cut) == [lost]
    assert lost.reasons == [f"subscription to {DESTINATION!r} removed from outside"]
    assert kept.reasons == away.reasons == virtual.reasons == []

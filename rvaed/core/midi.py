"""MIDI status bytes and controller numbers, named once for every part that reads or writes MIDI."""

NOTE_OFF, NOTE_ON, CONTROL_CHANGE, PROGRAM, PITCHBEND = 0x80, 0x90, 0xB0, 0xC0, 0xE0
SYSTEM = 0xF0  # status bytes from here up carry no channel
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
ALL_NOTES_OFF = 123  # the controller number of All Notes Off

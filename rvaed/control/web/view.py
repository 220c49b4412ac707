"""What the page shows, as plain data: the parameter table, the state, the pattern the
sequencer plays and the clock it plays on; and the latent map under the pad.

Every client gets the same snapshot (`snapshot`), so two phones and a laptop never disagree:
they draw what the daemon says, never what they last sent. The parameter rows are those of
rvaed.core.state (the page builds one control per row from `parameter_table`), the values
are taken as OSC feedback takes them (`Parameter.outward`, the clock's for the clock's rows),
and the grid is the installed schedule's note-ons: exactly what goes out to MIDI.
"""

import numpy as np

from rvaed.control.hub import Hub
from rvaed.core.parameters import CLOCK
from rvaed.core.state import PARAMETERS, PRESETS
from rvaed.model.latent import LatentRegion
from rvaed.model.latentmap import decode_tiles, positions
from rvaed.model.runtime import Decoder

MAP_SIZE = 8  # tiles per side under the pad
LEVELS = 10  # a tile's onset probabilities are sent as digits 0-9


def parameter_table() -> list[dict]:
    """The parameter table as the page builds its controls from it."""
    return [{"name": row.name, "address": row.address, "low": row.low, "high": row.high,
             "span": list(row.span), "default": row.outward(row.default),
             "kind": row.kind.__name__, "off": row.off, "doc": row.doc,
             "clock": row.invalidates == CLOCK, "choices": list(row.choices)}
            for row in PARAMETERS.values()]


def values(hub: Hub) -> dict[str, float | int]:
    """Every parameter's value on the wire (as OSC feedback sends it)."""
    clock, state = hub.clock, hub.state
    return {row.name: row.outward(getattr(clock if row.invalidates == CLOCK else state,
                                          row.name))
            for row in PARAMETERS.values()}


def played(hub: Hub) -> list[list]:
    """The installed schedule's note-ons as [voice, step, velocity, shift in steps, note]
    (note: the MIDI note sent, null when the drum machine has no sound for the voice)."""
    schedule = hub.schedule
    if schedule is None:
        return []
    spb = schedule.grid.steps_per_beat
    return [[e.voice, e.step, e.velocity, round(e.shift * spb, 3),
             e.destination.note if e.destination is not None else None]
            for e in schedule.events]


def coming(hub: Hub, bars: int) -> dict:
    """The coming ``bars`` bars from the next bar line, as they will play: per hit [column,
    voice, velocity], and the first one's step number from the start of play."""
    first, steps = hub.coming(bars)
    return {"first": first, "bars": bars, "steps_per_bar": hub.grid.steps_per_bar,
            "voices": list(hub.decoder.kit.names),
            "hits": [[column, e.voice, e.velocity] for column, events in enumerate(steps)
                     for e in events]}


def clock_view(hub: Hub) -> dict:
    """Enough of the clock for the page to run its playhead between snapshots (``now``: the
    host clock's seconds at ``beat``, for whoever compares with MIDI arrival times)."""
    clock = hub.clock
    now = clock.now()
    line = clock.timeline()
    beat, step, speed = hub.playhead()
    return {"tempo": clock.tempo, "playing": clock.playing, "peers": clock.peers,
            "link": clock.link, "beat": clock.beat_at(now), "start_beat": line.start_beat,
            "now": now, "playhead": {"beat": beat, "step": step, "speed": speed}}


def snapshot(hub: Hub, extras: dict) -> dict:
    """The whole view: state, pattern, clock, plus what the daemon adds (model, training,
    automation)."""
    state, grid = hub.state, hub.grid
    return {"t": "state", "values": values(hub), "x": state.x, "y": state.y,
            "mutes": sorted(state.mutes), "freezes": sorted(state.freezes),
            "steps": [list(entry) for entry in state.steps],
            "presets": [list(p) if p else None for p in state.presets],
            "voices": list(hub.decoder.kit.names),
            "grid": {"steps": grid.steps, "steps_per_beat": grid.steps_per_beat,
                     "steps_per_bar": grid.steps_per_bar, "meter": grid.meter},
            "pattern": played(hub), "clock": clock_view(hub), "map": map_id(hub),
            **extras}


def map_id(hub: Hub) -> str:
    """Which map is under the pad: the model's, over its box or the explore range."""
    return f"{id(hub.decoder)}{'-explore' if hub.state.explore else ''}"


def latent_map(decoder: Decoder, size: int = MAP_SIZE,
               region: LatentRegion | None = None) -> dict:
    """The tiles under the pad (`decode_tiles`, as `rvaed map` draws them) over ``region``
    (default the model's): per tile, per voice, one digit 0-9 per step (onset probability);
    row 0 is the top (y = 1)."""
    tiles = decode_tiles(decoder, size, region)
    digits = np.minimum(LEVELS - 1, (tiles * LEVELS).astype(np.int64))
    rows = [["".join(map(str, voice)) for voice in tile] for line in digits for tile in line]
    return {"size": size, "positions": positions(size).tolist(), "voices": list(decoder.kit.names),
            "steps": decoder.grid.steps, "model": decoder.manifest.name, "tiles": rows,
            "presets": PRESETS}

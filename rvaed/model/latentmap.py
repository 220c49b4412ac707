"""The latent map: what the model plays across the XY pad, as one grid of decoded patterns.

`rvaed map` draws it as a PNG and the web page draws it under its pad, both from `decode_tiles`,
so the picture and the page always show the same patterns at the same pad positions.
`draw_map` is the picture: voices named at the left of every row of tiles, x under the
columns and y beside the rows, the model and a marked point in the title. Tile
(row, column) is the pattern at pad position (x, y) = (column, size - 1 - row) / (size - 1):
x left to right, y bottom to top, exactly as the pad (and /rvaed/x, /rvaed/y) sends them.
"""

import numpy as np

from rvaed.core.font import HEIGHT, draw_text, text_width
from rvaed.model.latent import LatentRegion
from rvaed.model.runtime import Decoder

STEP_PX, VOICE_PX, GAP_PX, MARGIN_PX = 5, 10, 10, 12
TITLE_SCALE = AXIS_SCALE = 2
BACKGROUND, BEAT, HIT = (24, 24, 28), (48, 48, 56), (255, 176, 48)
INK, FAINT, MARK = (235, 235, 235), (150, 150, 160), (80, 200, 255)


def positions(size: int) -> np.ndarray:
    """The pad coordinates (0..1) of the tiles along one axis, left to right / bottom to top."""
    return np.linspace(0.0, 1.0, size) if size > 1 else np.array([0.5])


def decode_tiles(decoder: Decoder, size: int, region: LatentRegion | None = None) -> np.ndarray:
    """(size, size, voices, steps) onset probabilities over ``region`` (default the model's);
    row 0 is the top (y = 1)."""
    axis = positions(size)
    latent = region or decoder.manifest.latent
    z = np.array([latent.z_of(x, y) for y in axis[::-1] for x in axis], dtype=np.float32)
    table = decoder.table  # the daemon's decoder has one: the page's map reads it
    onsets = (decoder.decode_many(z) if table is None else table.lookup_many(z))[:, 0]
    return onsets.reshape(size, size, *onsets.shape[1:])


def draw_map(decoder: Decoder, size: int, point: tuple[float, float] = (0.5, 0.5),
             labels: bool = True) -> np.ndarray:
    """(height, width, 3) uint8: the map of ``size`` x ``size`` tiles, labelled (or, for a
    thumbnail, only the tiles)."""
    layout = Layout(decoder.kit.names, decoder.grid.steps, size, labels)
    image = np.zeros((layout.height, layout.width, 3), np.uint8)
    ground = np.empty((layout.tile_h, layout.tile_w, 3), np.float32)
    ground[:] = BACKGROUND
    ground[:, ::STEP_PX * decoder.grid.steps_per_beat] = BEAT
    tiles = decode_tiles(decoder, size)
    for row in range(size):
        for column in range(size):
            cells = np.repeat(np.repeat(tiles[row, column], VOICE_PX, 0), STEP_PX, 1)[..., None]
            pixels = ground + (np.array(HIT, np.float32) - ground) * cells
            top, left = layout.tile(row, column)
            image[top:top + layout.tile_h, left:left + layout.tile_w] = pixels.round()
    if labels:
        _labels(image, layout, decoder.manifest.name, point)
    return image


class Layout:
    """Where the title, the voice names, the tiles and the axis values go."""

    def __init__(self, voices: tuple[str, ...], steps: int, size: int,
                 labels: bool = True) -> None:
        self.voices, self.size = voices, size
        self.tile_w, self.tile_h = steps * STEP_PX, len(voices) * VOICE_PX
        self.left = self.top = GAP_PX
        if labels:
            self.left += MARGIN_PX + max(text_width(name) for name in voices)
            self.top += MARGIN_PX + HEIGHT * TITLE_SCALE
        self.right = self.left + size * (self.tile_w + GAP_PX)
        self.bottom = self.top + size * (self.tile_h + GAP_PX)
        self.width = self.right + (text_width("Y 0.00", AXIS_SCALE) + MARGIN_PX if labels else 0)
        self.height = self.bottom + (HEIGHT * AXIS_SCALE + MARGIN_PX if labels else 0)

    def tile(self, row: int, column: int) -> tuple[int, int]:
        """Top and left pixel of tile (row, column)."""
        return (self.top + row * (self.tile_h + GAP_PX),
                self.left + column * (self.tile_w + GAP_PX))

    def pixel(self, x: float, y: float) -> tuple[int, int]:
        """The pixel (top, left) of pad position (x, y): each tile's centre is at its values."""
        top, left = self.tile(self.size - 1, 0)
        reach = self.size - 1
        return (round(top + self.tile_h / 2 - y * reach * (self.tile_h + GAP_PX)),
                round(left + self.tile_w / 2 + x * reach * (self.tile_w + GAP_PX)))


def _labels(image: np.ndarray, layout: Layout, model: str, point: tuple[float, float]) -> None:
    """Title, voice names at every row of tiles, x under the columns, y beside the rows, and
    the ring at ``point``."""
    x, y = point
    title = (f"model {model}   point x {x:.2f} y {y:.2f}   "
             f"({len(layout.voices)} voices x {layout.tile_w // STEP_PX} steps)")
    draw_text(image, MARGIN_PX, MARGIN_PX, title, INK, TITLE_SCALE)
    axis = positions(layout.size)
    for index, value in enumerate(axis):
        row = layout.size - 1 - index
        top, left = layout.tile(row, index)
        for voice, name in enumerate(layout.voices):
            draw_text(image, layout.left - GAP_PX - text_width(name),
                      top + voice * VOICE_PX + (VOICE_PX - HEIGHT) // 2, name, FAINT)
        label = f"x {value:.2f}"
        draw_text(image, left + (layout.tile_w - text_width(label, AXIS_SCALE)) // 2,
                  layout.bottom, label, INK, AXIS_SCALE)
        draw_text(image, layout.right, top + (layout.tile_h - HEIGHT * AXIS_SCALE) // 2,
                  f"y {value:.2f}", INK, AXIS_SCALE)
    _ring(image, *layout.pixel(x, y))


def _ring(image: np.ndarray, top: int, left: int, radius: int = 9) -> None:
    """A square ring with a dot in the middle, clipped to the image."""
    height, width = image.shape[:2]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            edge = max(abs(dx), abs(dy)) >= radius - 1 or max(abs(dx), abs(dy)) <= 1
            if edge and 0 <= top + dy < height and 0 <= left + dx < width:
                image[top + dy, left + dx] = MARK

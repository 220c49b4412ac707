"""Draw a model's latent space as a PNG: a grid of decoded patterns, laid out as the XY pad.

Each tile is one pattern at that pad position (x left to right, y bottom to top, the values
the pad sends as /rvaed/x and /rvaed/y, printed under and beside the tiles): voices top to
bottom in kit order (named at the left), steps left to right, brighter = more likely a hit,
with faint lines on the beats. The title names the model and the point marked with a ring
(--point, default the middle). At the default 6 x 6 tiles the image is about 1,170 px wide
with cells of 5 x 10 px: a phone held across shows every step. So a musician sees what lives
where before touching the pad. The web page draws its pad over the same tiles
(rvaed.model.latentmap).
"""

from pathlib import Path

HELP = "draw a model's latent space as a labelled grid of decoded patterns (-o map.png)"
STEP_PX, VOICE_PX, GAP_PX, MARGIN_PX = 5, 10, 10, 12
TITLE_SCALE = AXIS_SCALE = 2
BACKGROUND, BEAT, HIT = (24, 24, 28), (48, 48, 56), (255, 176, 48)
INK, FAINT, MARK = (235, 235, 235), (150, 150, 160), (80, 200, 255)


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="starter",
                        help="model directory, or 'starter' (the shipped model)")
    parser.add_argument("--size", type=int, default=6, help="tiles per side (6)")
    parser.add_argument("--point", type=float, nargs=2, default=(0.5, 0.5),
                        metavar=("X", "Y"), help="pad position to mark, 0..1 each (0.5 0.5)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="MAP.png")


def run(args) -> int:
    from rvaed.core.errors import RvaedError
    from rvaed.core.png import write_png
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    if not 1 <= args.size <= 64:
        raise RvaedError(f"--size: expected 1-64 tiles per side, got {args.size}")
    if not all(0.0 <= v <= 1.0 for v in args.point):
        raise RvaedError(f"--point: expected X and Y within 0..1, got {args.point}")
    decoder = Decoder(model_path(args.model))
    write_png(args.output, latent_map(decoder, args.size, tuple(args.point)))
    print(f"{args.output}: {args.size} x {args.size} patterns of {decoder.manifest.name}")
    return 0


def latent_map(decoder, size: int, point: tuple[float, float] = (0.5, 0.5)):
    """(height, width, 3) uint8: the labelled map of ``size`` x ``size`` tiles."""
    import numpy as np

    from rvaed.model.latentmap import decode_tiles

    layout = Layout(decoder.kit.names, decoder.grid.steps, size)
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
    _labels(image, layout, decoder.manifest.name, point)
    return image


class Layout:
    """Where the title, the voice names, the tiles and the axis values go."""

    def __init__(self, voices: tuple[str, ...], steps: int, size: int) -> None:
        from rvaed.core.font import HEIGHT, text_width

        self.voices, self.size = voices, size
        self.tile_w, self.tile_h = steps * STEP_PX, len(voices) * VOICE_PX
        self.left = MARGIN_PX + max(text_width(name) for name in voices) + GAP_PX
        self.top = MARGIN_PX + HEIGHT * TITLE_SCALE + GAP_PX
        self.right = self.left + size * (self.tile_w + GAP_PX)
        self.bottom = self.top + size * (self.tile_h + GAP_PX)
        self.width = self.right + text_width("Y 0.00", AXIS_SCALE) + MARGIN_PX
        self.height = self.bottom + HEIGHT * AXIS_SCALE + MARGIN_PX

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


def _labels(image, layout: Layout, model: str, point: tuple[float, float]) -> None:
    """Title, voice names at every row of tiles, x under the columns, y beside the rows, and
    the ring at ``point``."""
    from rvaed.core.font import HEIGHT, draw_text, text_width
    from rvaed.model.latentmap import positions

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


def _ring(image, top: int, left: int, radius: int = 9) -> None:
    """A square ring with a dot in the middle, clipped to the image."""
    height, width = image.shape[:2]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            edge = max(abs(dx), abs(dy)) >= radius - 1 or max(abs(dx), abs(dy)) <= 1
            if edge and 0 <= top + dy < height and 0 <= left + dx < width:
                image[top + dy, left + dx] = MARK

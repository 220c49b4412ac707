"""Draw a model's latent space as a PNG: a grid of decoded patterns, laid out as the XY pad.

Each tile is one pattern at that controller position (x left to right, y bottom to top):
voices top to bottom in kit order, steps left to right, brighter = more likely a hit, with
faint lines on the beats. So a musician sees what lives where before touching the pad.
"""

from pathlib import Path

HELP = "draw a model's latent space as a grid of decoded patterns (-o map.png)"
STEP_PX, VOICE_PX, GAP_PX = 3, 4, 8
BACKGROUND, BEAT, HIT = (24, 24, 28), (48, 48, 56), (255, 176, 48)


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="starter",
                        help="model directory, or 'starter' (the shipped model)")
    parser.add_argument("--size", type=int, default=8, help="tiles per side (8)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="MAP.png",
                        help="the picture to write")


def run(args) -> int:
    from rvaed.core.errors import RvaedError
    from rvaed.core.png import write_png
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    if not 1 <= args.size <= 64:
        raise RvaedError(f"--size: expected 1-64 tiles per side, got {args.size}")
    decoder = Decoder(model_path(args.model))
    write_png(args.output, latent_map(decoder, args.size))
    print(f"{args.output}: {args.size} x {args.size} patterns of {decoder.manifest.name}")
    return 0


def latent_map(decoder, size: int):
    """(height, width, 3) uint8: ``size`` x ``size`` tiles, y = 1 at the top."""
    import numpy as np

    positions = np.linspace(0.0, 1.0, size)
    z = [decoder.manifest.latent.z_of(x, y) for y in positions[::-1] for x in positions]
    onsets = decoder.decode_many(np.array(z))[:, 0]
    voices, steps = onsets.shape[1:]
    tile_h, tile_w = voices * VOICE_PX, steps * STEP_PX
    image = np.empty((size * (tile_h + GAP_PX) + GAP_PX, size * (tile_w + GAP_PX) + GAP_PX, 3),
                     np.uint8)
    image[:] = (0, 0, 0)
    ground = np.empty((tile_h, tile_w, 3), np.float32)
    ground[:] = BACKGROUND
    ground[:, ::STEP_PX * decoder.grid.steps_per_beat] = BEAT
    for index, tile in enumerate(onsets):
        cells = np.repeat(np.repeat(tile, VOICE_PX, 0), STEP_PX, 1)[..., None]
        pixels = ground + (np.array(HIT, np.float32) - ground) * cells
        top = GAP_PX + (index // size) * (tile_h + GAP_PX)
        left = GAP_PX + (index % size) * (tile_w + GAP_PX)
        image[top:top + tile_h, left:left + tile_w] = pixels.round().astype(np.uint8)
    return image

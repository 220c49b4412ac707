"""Draw a model's latent space as a PNG: a grid of decoded patterns, laid out as the XY pad.

Each tile is one pattern at that pad position (x left to right, y bottom to top, the values
the pad sends as /rvaed/x and /rvaed/y, printed under and beside the tiles): voices top to
bottom in kit order (named at the left), steps left to right, brighter = more likely a hit,
with faint lines on the beats. The title names the model and the point marked with a ring
(--point, default the middle). At the default 6 x 6 tiles the image is about 1,170 px wide
with cells of 5 x 10 px: a phone held across shows every step. So a musician sees what lives
where before touching the pad. The web page draws the same tiles under its pad.
"""

from pathlib import Path

HELP = "draw a model's latent space as a labelled grid of decoded patterns (-o map.png)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="starter",
                        help="model directory, or 'starter' (the shipped model)")
    parser.add_argument("--size", type=int, default=6, help="tiles per side (6)")
    parser.add_argument("--point", type=float, nargs=2, default=(0.5, 0.5),
                        metavar=("X", "Y"), help="pad position to mark, 0..1 each (0.5 0.5)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="MAP.png",
                        help="the picture to write")


def run(args) -> int:
    from rvaed.core.errors import RvaedError
    from rvaed.core.png import write_png
    from rvaed.model.latentmap import draw_map
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    if not 1 <= args.size <= 64:
        raise RvaedError(f"--size: expected 1-64 tiles per side, got {args.size}")
    if not all(0.0 <= v <= 1.0 for v in args.point):
        raise RvaedError(f"--point: expected X and Y within 0..1, got {args.point}")
    decoder = Decoder(model_path(args.model))
    write_png(args.output, draw_map(decoder, args.size, tuple(args.point)))
    print(f"{args.output}: {args.size} x {args.size} patterns of {decoder.manifest.name}")
    return 0

"""Decode one point of a model's latent space and save the pattern as a MIDI file.

The point is a controller position (--xy, 0-1 on both axes, covering the region the training
data occupies) or a raw latent point (--z).
"""

from pathlib import Path

HELP = "decode a point of a model into a MIDI file (-o out.mid)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="starter",
                        help="model directory, or 'starter' (the shipped model)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--xy", type=float, nargs=2, metavar=("X", "Y"),
                       help="controller position, 0-1 each (default: the model's starting "
                       "point, where its typical groove lies)")
    where.add_argument("--z", type=float, nargs=2, metavar=("ZX", "ZY"),
                       help="a raw latent point instead")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="play cells whose hit probability is above this (0.5)")
    parser.add_argument("--bpm", type=float, default=120.0, help="tempo of the file (120)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mid",
                        help="the MIDI file to write")


def run(args) -> int:
    from rvaed.core.errors import RvaedError
    from rvaed.core.patternfile import save_pattern
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    if not 0.0 <= args.threshold <= 1.0:
        raise RvaedError(f"--threshold: expected 0-1, got {args.threshold}")
    if args.xy is not None and not all(0.0 <= v <= 1.0 for v in args.xy):
        raise RvaedError(f"--xy: expected two numbers 0-1, got {args.xy[0]} {args.xy[1]}")
    decoder = Decoder(model_path(args.model))
    latent = decoder.manifest.latent
    z = tuple(args.z) if args.z else latent.z_of(*(args.xy or latent.default))
    pattern = decoder.decode(*z)
    save_pattern(pattern, args.output, decoder.kit, decoder.grid, args.bpm,
                 threshold=args.threshold)
    hits = len(pattern.hits(args.threshold))
    print(f"{args.output}: {hits} hits from {decoder.manifest.name} at z = "
          f"({z[0]:.3f}, {z[1]:.3f})")
    return 0

"""Measure rvaed on this machine and print the figures (p50/p99/max where it is a
distribution). `--json FILE` also writes them for machines."""

import importlib
import json
from pathlib import Path

HELP = "measure this machine: timing, decode, train, control, peers, startup, or all"

BENCHMARKS: list[str] = [
    "timing",
    "decode", "train",
    "control", "osc",
    "peers", "startup", "linkedges", "all",
]


def add_arguments(parser) -> None:
    benchmarks = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK",
                                       help="what to measure")
    for name in BENCHMARKS:
        module = importlib.import_module(f"rvaed.benchmarks.{name}")
        sub = benchmarks.add_parser(name, help=module.HELP, description=module.__doc__)
        sub.add_argument("--json", type=Path, metavar="FILE", help="also write figures as JSON")
        module.add_arguments(sub)
        sub.set_defaults(benchmark_run=module.run)


def run(args) -> int:
    figures = args.benchmark_run(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0

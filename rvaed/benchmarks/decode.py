"""Decode latency: from a point of the latent space to a pattern, one call at a time as the
performance makes it.

Times the path the daemon uses (the model's decode table), the onnxruntime decoder it falls
back to (the model's int8 twin when it has one), the fp32 weights beside it and, when torch is
installed, torch itself on the same weights (one thread each), over many calls after a
warm-up: back to back, and spaced 5 ms apart as control changes come (the caches are then
cold). Reports the table's build time, size and onset agreement. Then measures the resident
memory of a fresh process that only loads the decoder, builds its table and decodes (and
checks it never imported torch).
"""

import json
import subprocess
import sys
import time

import numpy as np

from rvaed.benchmarks.progress import Progress

HELP = "decode latency (the daemon's decoder, its fp32 weights, torch) and its memory"
MB = 1024 * 1024
SPACING = 0.005  # seconds between spaced calls


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="starter",
                        help="model directory, or 'starter' (the shipped model)")
    parser.add_argument("--calls", type=int, default=10_000, help="timed calls (10000)")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed calls first (1000)")
    parser.add_argument("--spaced-calls", type=int, default=1_000,
                        help=f"timed calls {SPACING * 1000:g} ms apart (1000)")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave out the comparison with torch")


def run(args) -> dict:
    from rvaed.model.modeldir import model_path
    from rvaed.model.runtime import Decoder

    progress = Progress("decode")
    model = model_path(args.model)
    tabulated, daemons = Decoder(model), Decoder(model)
    figures: dict = {"model": str(model), "calls": args.calls, "spaced_calls": args.spaced_calls,
                     "table_build": table_build(tabulated)}
    paths = {"table": tabulated, "onnxruntime": daemons}
    if daemons.weights != "fp32":
        paths["onnxruntime_fp32"] = Decoder(model, int8=False)
    points = latent_points(daemons.manifest.latent)
    for name, decoder in paths.items():
        progress.say(f"{name} ({decoder.weights}): {args.calls} calls back to back, then "
                     f"{args.spaced_calls} spaced {SPACING * 1000:g} ms")
        figures[name] = {"weights": decoder.weights,
                         **time_calls(decoder.decode, points, args.calls, args.warmup),
                         "spaced": time_calls(decoder.decode, points, args.spaced_calls,
                                              args.warmup // 10, SPACING)}
    progress.say("memory of a process that only decodes")
    figures["process"] = decoder_process(model)
    if not args.no_torch and torch_installed():
        progress.say(f"torch (eager): {args.calls} calls back to back")
        figures["torch_eager"] = time_calls(torch_decode(model), points, args.calls,
                                            args.warmup)
        figures["speedup_p50"] = round(figures["torch_eager"]["p50_us"]
                                       / figures["onnxruntime"]["p50_us"], 2)
    print_table(figures)
    return figures


def table_build(decoder) -> dict:
    """Build ``decoder``'s table; its size, build time and agreement with direct decoding."""
    start = time.perf_counter()
    table = decoder.tabulate()
    return {"grid": table.values.shape[0], "dtype": str(table.values.dtype),
            "mb": round(table.nbytes / 1e6, 1), "seconds": round(time.perf_counter() - start, 2),
            "onset_agreement": round(table.agreement, 5), "used": table.usable}


def latent_points(region, count: int = 997) -> np.ndarray:
    """Points spread over the model's region (varied inputs, fixed for a fair comparison)."""
    rng = np.random.default_rng(0)
    return np.array([region.z_of(x, y) for x, y in rng.random((count, 2))])


def time_calls(decode, points: np.ndarray, calls: int, warmup: int,
               spacing: float = 0.0) -> dict:
    """p50/p99/max (microseconds) of ``decode(zx, zy)`` over ``calls`` calls, ``spacing``
    seconds apart (0: back to back)."""
    pairs = [(float(zx), float(zy)) for zx, zy in points]
    for i in range(warmup):
        decode(*pairs[i % len(pairs)])
    samples = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(calls):
        zx, zy = pairs[i % len(pairs)]
        if spacing:
            time.sleep(spacing)
        start = clock()
        decode(zx, zy)
        samples[i] = clock() - start
    us = samples / 1000.0
    return {"p50_us": round(float(np.percentile(us, 50)), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1),
            "max_us": round(float(us.max()), 1), "mean_us": round(float(us.mean()), 1)}


def torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def torch_decode(model_dir):
    """decode(zx, zy) -> Pattern with torch eager on the model's weights, one thread."""
    import torch

    from rvaed.core.pattern import Pattern
    from rvaed.training.export import load_model

    torch.set_num_threads(1)
    network = load_model(model_dir)[0].decoder

    def decode(zx: float, zy: float) -> Pattern:
        with torch.inference_mode():
            return Pattern.from_array(network(torch.tensor([[zx, zy]]))[0].numpy())

    return decode


CHILD = """
import json, sys
from rvaed.benchmarks.decode import decoder_process_figures
print(json.dumps(decoder_process_figures(sys.argv[1])))
"""


def decoder_process(model_dir) -> dict:
    """Memory of a fresh process that loads only the decoder and decodes 1,000 times."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(model_dir)], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout)


def decoder_process_figures(model_dir) -> dict:
    """Run in the fresh process: RSS now and at peak (with the table), and whether torch got
    imported."""
    from rvaed.model.runtime import Decoder

    decoder = Decoder(model_dir)
    decoder.tabulate()
    for i in range(1000):
        decoder.decode_xy(i % 10 / 10, i % 7 / 7)
    status = {}
    try:
        with open("/proc/self/status") as stream:
            status = dict(line.split(":", 1) for line in stream if ":" in line)
    except OSError:
        pass  # not Linux: fall back to the peak from getrusage below
    figures: dict[str, bool | float] = {"torch_imported": "torch" in sys.modules}
    if "VmRSS" in status:
        figures["rss_mb"] = round(int(status["VmRSS"].split()[0]) / 1024, 1)
        figures["peak_rss_mb"] = round(int(status["VmHWM"].split()[0]) / 1024, 1)
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        figures["peak_rss_mb"] = round(peak / (MB if sys.platform == "darwin" else 1024), 1)
    return figures


PATHS = ("table", "onnxruntime", "onnxruntime_fp32", "torch_eager")


def print_table(figures: dict) -> None:
    print(f"decode latent point -> Pattern, {figures['calls']} calls back to back and "
          f"{figures['spaced_calls']} spaced {SPACING * 1000:g} ms, model {figures['model']}")
    print(f"{'path':<18}{'weights':>8}{'p50 us':>9}{'p99 us':>9}{'max us':>9}"
          f"{'spaced p50':>12}{'spaced p99':>12}")
    for path in PATHS:
        if path in figures:
            row = figures[path]
            spaced = row.get("spaced", {})
            print(f"{path:<18}{row.get('weights', 'fp32'):>8}{row['p50_us']:>9}"
                  f"{row['p99_us']:>9}{row['max_us']:>9}{spaced.get('p50_us', ''):>12}"
                  f"{spaced.get('p99_us', ''):>12}")
    build = figures["table_build"]
    print(f"table: {build['grid']} x {build['grid']} {build['dtype']}, {build['mb']} MB, built "
          f"in {build['seconds']} s, onsets agree {100 * build['onset_agreement']:.3f} % with "
          f"direct decoding ({'used' if build['used'] else 'not used'})")
    if "speedup_p50" in figures:
        print(f"onnxruntime is {figures['speedup_p50']}x faster than torch eager at p50")
    process = figures["process"]
    if "error" in process:
        print(f"decoder process: could not measure: {process['error']}")
    else:
        rss = f"RSS {process['rss_mb']} MB, " if "rss_mb" in process else ""
        print(f"decoder-only process: {rss}peak {process['peak_rss_mb']} MB, torch imported: "
              f"{process['torch_imported']}")

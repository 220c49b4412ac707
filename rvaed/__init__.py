"""rvaed: a headless drum-groove daemon built around a small variational autoencoder.

onnxruntime (1.2x, Linux too) starts Microsoft's 1DS telemetry when it is imported: it writes
a device id and an event database into ~/.cache/Microsoft/DeveloperTools/.onnxruntime,
outside rvaed's own folders. ORT_DISABLE_TELEMETRY=1, set here before any part of rvaed can
import onnxruntime, stops it (unless the user set the variable).
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

"""Write an RGB image as a PNG file with zlib and struct (no imaging library needed)."""

import struct
import zlib
from pathlib import Path

import numpy as np

from rvaed.core.errors import RvaedError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(rgb: np.ndarray) -> bytes:
    """(height, width, 3) uint8 -> PNG bytes (8-bit truecolour, no filtering)."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8),
                           np.ascontiguousarray(rgb, np.uint8).reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + _chunk(b"IEND", b""))


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write the image next to ``path`` first, then rename it into place."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        temp.write_bytes(encode_png(rgb))
        temp.replace(path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise RvaedError(f"{path}: cannot write the image: {exc.strerror or exc}") from None

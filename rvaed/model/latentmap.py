"""The latent map: what the model plays across the XY pad, as one grid of decoded patterns.

`rvaed map` draws it as a PNG and the web page draws it under its pad, both from `decode_tiles`,
so the picture and the page always show the same patterns at the same pad positions. Tile
(row, column) is the pattern at pad position (x, y) = (column, size - 1 - row) / (size - 1):
x left to right, y bottom to top, exactly as the pad (and /rvaed/x, /rvaed/y) sends them.
"""

import numpy as np

from rvaed.model.runtime import Decoder


def positions(size: int) -> np.ndarray:
    """The pad coordinates (0..1) of the tiles along one axis, left to right / bottom to top."""
    return np.linspace(0.0, 1.0, size) if size > 1 else np.array([0.5])


def decode_tiles(decoder: Decoder, size: int) -> np.ndarray:
    """(size, size, voices, steps) onset probabilities; row 0 is the top (y = 1)."""
    axis = positions(size)
    latent = decoder.manifest.latent
    z = np.array([latent.z_of(x, y) for y in axis[::-1] for x in axis], dtype=np.float32)
    onsets = decoder.decode_many(z)[:, 0]
    return onsets.reshape(size, size, *onsets.shape[1:])

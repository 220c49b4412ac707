"""The latent space: two dimensions (an XY pad), and the region of it a controller covers."""

from dataclasses import dataclass

import numpy as np

LATENT = 2  # the latent space is an XY pad: always two dimensions


MIN_SPAN = 1.0  # one prior standard deviation: a one-window model still gives the pad a range


@dataclass(frozen=True)
class LatentRegion:
    """The rectangle of latent space the controller square [0, 1]^2 maps onto, linearly, and
    the pad position a fresh performance starts at (``default``: where the training data's
    typical groove lies, see rvaed.model.typical; the centre for models made before it)."""

    low: tuple[float, float]
    high: tuple[float, float]
    default: tuple[float, float] = (0.5, 0.5)

    @classmethod
    def around(cls, means: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0),
               min_span: float = MIN_SPAN) -> "LatentRegion":
        """The percentile box of encoded means (N, 2), widened to at least ``min_span``."""
        low, high = np.percentile(np.asarray(means, dtype=np.float64), percentiles, axis=0)
        centre, half = (low + high) / 2, np.maximum(high - low, min_span) / 2
        (lx, ly), (hx, hy) = centre - half, centre + half
        return cls((float(lx), float(ly)), (float(hx), float(hy)))

    def z_of(self, x: float, y: float) -> tuple[float, float]:
        """Controller position (0..1 each) -> latent point."""
        (lx, ly), (hx, hy) = self.low, self.high
        return lx + (hx - lx) * x, ly + (hy - ly) * y

    def xy_of(self, zx: float, zy: float) -> tuple[float, float]:
        """Latent point -> controller position, clipped to the square."""
        (lx, ly), (hx, hy) = self.low, self.high
        return (min(1.0, max(0.0, (zx - lx) / (hx - lx))),
                min(1.0, max(0.0, (zy - ly) / (hy - ly))))

    def grid(self, points: int) -> np.ndarray:
        """points x points latent points (float32, shape (points**2, 2)) spanning the region."""
        (lx, ly), (hx, hy) = self.low, self.high
        xs, ys = np.linspace(lx, hx, points), np.linspace(ly, hy, points)
        return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, LATENT).astype(np.float32)

    def to_dict(self) -> dict:
        return {"low": list(self.low), "high": list(self.high), "default": list(self.default)}


# The pad's range with the explore switch on: the prior's +-3 standard deviations on both axes,
# the original device's fixed range, beyond the box the training data fills.
EXPLORE = LatentRegion((-3.0, -3.0), (3.0, 3.0))

"""Where a model starts playing: the pad position of a typical, well-populated groove of its
training data, so that the first sound is a groove and not whatever the latent centre holds
(on the starter, (0.5, 0.5) decodes to 2 kicks and 9 soft snares per two bars, no hats).

The typical groove is the medoid (least total Hamming distance between onset grids) of the
training windows that have a kick, a snare and a hat; its encoding, as a pad position, is the
model's default point, kept in the manifest (`LatentRegion.default`). On the starter it is a
backbeat with eighth-note hats: kick 6, snare 4, closed hat 16 hits per two bars, decoded as
kick 8, snare 4, closed hat 16 (docs/decisions.md).
"""

import numpy as np

from rvaed.core.kit import Kit

BACKBONE = ("kick", "snare", "hat")  # a voice whose name contains one of these
REFERENCES = 4096  # windows a candidate is compared with: bounds the work on large data sets
HIT = 0.5  # an onset cell above this is a hit


def backbone(kit: Kit) -> list[list[int]]:
    """Per backbone part that the kit has, the rows of its voices (e.g. both hats)."""
    parts = [[row for row, name in enumerate(kit.names) if part in name] for part in BACKBONE]
    return [rows for rows in parts if rows]


def well_populated(onsets: np.ndarray, kit: Kit) -> np.ndarray:
    """(N,) bool: windows (N, voices, steps) with a hit in every backbone part of the kit."""
    hits = onsets > HIT
    keep = np.ones(len(onsets), dtype=bool)
    for rows in backbone(kit):
        keep &= hits[:, rows].any(axis=(1, 2))
    return keep


def medoid(onsets: np.ndarray, seed: int = 0) -> int:
    """Index of the window with the least total Hamming distance to the others (to a seeded
    sample of REFERENCES of them on larger sets)."""
    cells = (onsets > HIT).reshape(len(onsets), -1).astype(np.float32)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(cells), REFERENCES, replace=False) if len(cells) > REFERENCES \
        else slice(None)
    references = cells[chosen]
    counts, reference_counts = cells.sum(axis=1), references.sum(axis=1)
    totals = np.empty(len(cells))
    for start in range(0, len(cells), 1024):
        block = cells[start:start + 1024]
        shared = block @ references.T
        totals[start:start + 1024] = (counts[start:start + 1024, None] + reference_counts
                                      - 2 * shared).sum(axis=1)
    return int(np.argmin(totals))


def typical_window(windows: np.ndarray, kit: Kit) -> int:
    """Index in ``windows`` (N, 3, voices, steps) of the typical, well-populated groove: the
    medoid of the windows with the whole backbone, or of all windows when none has it."""
    onsets = windows[:, 0]
    candidates = np.flatnonzero(well_populated(onsets, kit))
    if not len(candidates):
        candidates = np.arange(len(windows))
    return int(candidates[medoid(onsets[candidates])])

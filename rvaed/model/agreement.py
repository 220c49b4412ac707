"""The rule a faster way of decoding must pass before it plays: its onset decisions agree with
direct fp32 decoding on at least 99.9 % of the cells at every threshold from 0.05 to 0.95
(the threshold a musician turns). The int8 twin (rvaed.model.int8) and the decode table
(rvaed.model.table) are both held to it."""

import numpy as np

MIN_AGREEMENT = 0.999
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def agreeing(reference: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """How many cells of ``onsets`` decide as ``reference`` does, per threshold."""
    return np.array([((reference > t) == (onsets > t)).sum() for t in THRESHOLDS])


def agreement(reference: np.ndarray, onsets: np.ndarray) -> float:
    """The smallest share of agreeing cells over THRESHOLDS."""
    return float(agreeing(reference, onsets).min() / reference.size)

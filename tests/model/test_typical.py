"""The default point: the typical, well-populated groove of the training data, on synthetic
windows whose medoid is known and on the shipped starter."""

import numpy as np

from rvaed.core.kit import load_kit
from rvaed.model.modeldir import starter_model
from rvaed.model.runtime import Decoder
from rvaed.model.typical import backbone, medoid, typical_window, well_populated

KIT = load_kit("gmd")  # kick, snare, closed-hat, open-hat, ...
KICK, SNARE, HAT, OPEN_HAT = (KIT.names.index(n) for n in ("kick", "snare", "closed-hat",
                                                             "open-hat"))


def window(hits: dict[int, list[int]]) -> np.ndarray:
    """One window (3, voices, 32) with onsets at the given steps per voice."""
    data = np.zeros((3, KIT.size, 32), np.float32)
    for voice, steps in hits.items():
        data[0, voice, steps] = 1.0
        data[1, voice, steps] = 0.8
    return data


ROCK = {KICK: [0, 8, 16, 24], SNARE: [4, 12, 20, 28], HAT: list(range(0, 32, 2))}


def test_the_backbone_groups_both_hats():
    assert backbone(KIT) == [[KICK], [SNARE], [HAT, OPEN_HAT]]


def test_the_medoid_is_the_window_closest_to_all_others():
    variants = [window({**ROCK, KICK: [0, 8, 16, 24, extra]}) for extra in (3, 10, 19, 27)]
    windows = np.stack([window(ROCK), *variants])  # the plain rock beat sits in the middle
    order = [3, 0, 4, 1, 2]
    assert medoid(windows[order][:, 0]) == order.index(0)


def test_only_windows_with_kick_snare_and_a_hat_are_candidates():
    sparse = window({KICK: [0, 16], SNARE: [8, 24]})
    windows = np.stack([sparse] * 5 + [window(ROCK), window({**ROCK, HAT: [2, 6]})])
    assert well_populated(windows[:, 0], KIT).tolist() == [False] * 5 + [True, True]
    assert typical_window(windows, KIT) in (5, 6)  # not one of the five sparse ones
    only_sparse = np.stack([sparse, window({KICK: [0]})])
    assert typical_window(only_sparse, KIT) in (0, 1)  # none qualifies: all are candidates


def test_the_starter_starts_on_a_groove_with_kick_snare_and_hats():
    decoder = Decoder(starter_model())
    latent = decoder.manifest.latent
    onsets = decoder.decode_xy(*latent.default).onsets > 0.5  # the daemon's default threshold
    hits = dict(zip(KIT.names, onsets.sum(axis=1).tolist(), strict=True))
    assert latent.default != (0.5, 0.5)
    assert hits["kick"] >= 4 and hits["snare"] >= 4 and hits["closed-hat"] >= 8, hits

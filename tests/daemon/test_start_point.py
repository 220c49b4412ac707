"""A fresh daemon starts at the model's default point (its typical groove); a saved x/y wins."""

from pathlib import Path

from rvaed.daemon.persist import Saved
from rvaed.model.modeldir import starter_model
from rvaed.model.runtime import Decoder


def test_a_fresh_state_starts_at_the_models_default_point():
    decoder = Decoder(starter_model())
    state = Saved(Path("state.json")).state(decoder.kit.size, decoder.manifest.latent.default)
    assert (state.x, state.y) == decoder.manifest.latent.default != (0.5, 0.5)


def test_a_saved_position_is_kept():
    decoder = Decoder(starter_model())
    saved = Saved(Path("state.json"), {"state": {"x": 0.3, "y": 0.9}})
    state = saved.state(decoder.kit.size, decoder.manifest.latent.default)
    assert (state.x, state.y) == (0.3, 0.9)

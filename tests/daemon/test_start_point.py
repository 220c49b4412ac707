"""A fresh daemon starts at the model's default point (its typical groove); a saved x/y wins."""

from rvaed.daemon.service import _restore_state
from rvaed.model.modeldir import starter_model
from rvaed.model.runtime import Decoder


def test_a_fresh_state_starts_at_the_models_default_point():
    decoder = Decoder(starter_model())
    state = _restore_state(None, decoder)
    assert (state.x, state.y) == decoder.manifest.latent.default != (0.5, 0.5)


def test_a_saved_position_is_kept():
    decoder = Decoder(starter_model())
    state = _restore_state({"x": 0.3, "y": 0.9}, decoder)
    assert (state.x, state.y) == (0.3, 0.9)

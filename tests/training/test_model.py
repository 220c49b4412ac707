"""The VAE network and its loss: shapes, output ranges, configurable sizes, loss terms."""

import pytest
import torch

from rvaed.training.network import RhythmVAE, vae_loss
from rvaed.training.options import LossWeights, ModelConfig


def windows(count: int = 4, voices: int = 9, steps: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    onsets = (torch.rand(count, voices, steps, generator=generator) < 0.2).float()
    return torch.stack([onsets, onsets * 0.8, onsets * 0.25], dim=1)


def test_paper_architecture_by_default():
    model = RhythmVAE(9, 32)
    encoder = [block.linear.out_features for block in model.encoder.blocks]
    decoder = [block.linear.out_features for block in model.decoder.blocks]
    assert encoder == decoder == [512, 512]
    assert model.encoder.blocks[0].linear.in_features == 3 * 9 * 32
    assert model.encoder.mean.out_features == model.decoder.blocks[0].linear.in_features == 2


def test_sizes_are_configurable():
    model = RhythmVAE(5, 16, ModelConfig(encoder_hidden=(64, 32, 16), decoder_hidden=(8,)))
    assert [b.linear.out_features for b in model.encoder.blocks] == [64, 32, 16]
    assert [b.linear.out_features for b in model.decoder.blocks] == [8]
    out, mean, logvar = model(windows(3, 5, 16))
    assert out.shape == (3, 3, 5, 16) and mean.shape == logvar.shape == (3, 2)


def test_heads_keep_their_ranges():
    model = RhythmVAE(9, 32).eval()
    with torch.no_grad():
        out = model.decoder(torch.randn(64, 2) * 10)
    assert out.shape == (64, 3, 9, 32)
    assert out[:, :2].min() >= 0 and out[:, :2].max() <= 1
    assert out[:, 2].min() >= -1 and out[:, 2].max() <= 1
    assert out[:, 2].min() < 0  # tanh, not sigmoid


def test_eval_uses_the_mean_and_training_samples():
    model = RhythmVAE(9, 32)
    x = windows()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], model(x)[0])
        model.train()
        assert not torch.equal(model(x)[0], model(x)[0])


def test_bad_sizes_are_refused():
    with pytest.raises(Exception, match="encoder_hidden"):
        ModelConfig(encoder_hidden=(0,))


def loss_of(x, out, weights, mean=None, logvar=None):
    mean = torch.zeros(len(x), 2) if mean is None else mean
    logvar = torch.zeros(len(x), 2) if logvar is None else logvar
    return vae_loss(x, out, mean, logvar, weights).item()


def test_loss_weights_scale_their_terms():
    x = windows()
    out = x.clone()
    out[:, 0] = out[:, 0].clamp(0.05, 0.95)
    out[:, 1] += 0.1  # every velocity off by 0.1
    base = loss_of(x, out, LossWeights(velocities=0.0))
    cells = 9 * 32
    assert loss_of(x, out, LossWeights(velocities=2.5)) == pytest.approx(
        base + 2.5 * 0.01 * cells, rel=1e-4)
    assert loss_of(x, out, LossWeights(velocities=5.0)) == pytest.approx(
        base + 5.0 * 0.01 * cells, rel=1e-4)


def test_hits_only_ignores_velocity_and_offset_of_silent_cells():
    x = windows()
    silent = x[:, 0] < 0.5
    out = x.clone()
    out[:, 0] = out[:, 0].clamp(0.05, 0.95)
    noisy = out.clone()
    noisy[:, 1][silent] = 0.9
    noisy[:, 2][silent] = -0.7
    weights = LossWeights(hits_only=True)
    assert loss_of(x, noisy, weights) == pytest.approx(loss_of(x, out, weights))
    assert loss_of(x, noisy, LossWeights()) > loss_of(x, out, LossWeights()) + 100


def test_kl_term_is_zero_at_the_prior_and_grows_away_from_it():
    x = windows()
    out = x.clone().clamp(0.05, 0.95)
    prior = loss_of(x, out, LossWeights(kl=1.0))
    assert prior == pytest.approx(loss_of(x, out, LossWeights(kl=0.0)))
    far = loss_of(x, out, LossWeights(kl=1.0), mean=torch.full((4, 2), 2.0))
    assert far == pytest.approx(prior + 0.5 * (4 + 4), rel=1e-5)  # 0.5 * sum(mean^2)

"""The RhythmVAE network and its loss (torch: the training side only, never the runtime).

A window of drums is three voices x steps matrices (onsets, velocities, offsets). The encoder
flattens them through fully-connected layers with batch norm and LeakyReLU to the mean and
log-variance of a 2-D Gaussian; the decoder maps a 2-D point back through the same kind of
layers to three heads: sigmoid onsets (hit probabilities), sigmoid velocities, tanh offsets.
"""

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from rvaed.model.latent import LATENT
from rvaed.training.options import LossWeights, ModelConfig


class Block(nn.Module):
    """Linear -> batch norm -> LeakyReLU: the one layer type of both halves."""

    def __init__(self, n_in: int, n_out: int, slope: float) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.norm = nn.BatchNorm1d(n_out)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.linear(x)), self.slope)


def _blocks(sizes: tuple[int, ...], slope: float) -> nn.Sequential:
    return nn.Sequential(*(Block(a, b, slope) for a, b in pairwise(sizes)))


class Encoder(nn.Module):
    """(batch, 3, voices, steps) -> mean and log-variance of z, each (batch, 2)."""

    def __init__(self, voices: int, steps: int, config: ModelConfig) -> None:
        super().__init__()
        sizes = (3 * voices * steps, *config.encoder_hidden)
        self.blocks = _blocks(sizes, config.leaky_slope)
        self.mean = nn.Linear(sizes[-1], LATENT)
        self.logvar = nn.Linear(sizes[-1], LATENT)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.blocks(x.flatten(1))
        return self.mean(h), self.logvar(h)


class Decoder(nn.Module):
    """(batch, 2) -> (batch, 3, voices, steps): onset probabilities, velocities, offsets."""

    def __init__(self, voices: int, steps: int, config: ModelConfig) -> None:
        super().__init__()
        self.shape = (3, voices, steps)
        sizes = (LATENT, *config.decoder_hidden)
        self.blocks = _blocks(sizes, config.leaky_slope)
        self.onsets = nn.Linear(sizes[-1], voices * steps)
        self.velocities = nn.Linear(sizes[-1], voices * steps)
        self.offsets = nn.Linear(sizes[-1], voices * steps)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(z)
        heads = (torch.sigmoid(self.onsets(h)), torch.sigmoid(self.velocities(h)),
                 torch.tanh(self.offsets(h)))
        return torch.stack(heads, dim=1).view(-1, *self.shape)


class RhythmVAE(nn.Module):
    """Encoder + decoder. Training samples z from the posterior; evaluation uses its mean."""

    def __init__(self, voices: int, steps: int, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.voices, self.steps = voices, steps
        self.encoder = Encoder(voices, steps, self.config)
        self.decoder = Decoder(voices, steps, self.config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if self.training else mean
        return self.decoder(z), mean, logvar


def vae_loss(x: torch.Tensor, out: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
             weights: LossWeights) -> torch.Tensor:
    """The original device's loss, summed over the cells of a window, averaged over windows.

    Summing over cells (rather than averaging) keeps the reconstruction terms in proportion
    to the KL term of a 2-D latent, as in the original.
    """
    onsets = F.binary_cross_entropy(out[:, 0], x[:, 0], reduction="none")
    velocities = (out[:, 1] - x[:, 1]) ** 2
    offsets = (out[:, 2] - x[:, 2]) ** 2
    if weights.hits_only:
        hits = (x[:, 0] > 0.5).to(x.dtype)
        velocities, offsets = velocities * hits, offsets * hits
    kl = -0.5 * torch.sum(1 + logvar - mean**2 - torch.exp(logvar), dim=1)
    per_window = (weights.onsets * onsets.sum((1, 2)) + weights.velocities * velocities.sum((1, 2))
                  + weights.offsets * offsets.sum((1, 2)) + weights.kl * kl)
    return per_window.mean()

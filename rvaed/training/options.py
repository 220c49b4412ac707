"""What a training run is asked to do (the network's sizes, the loss weights, the loop
settings) and what it reports after each epoch.

These are plain dataclasses without torch, so that the performing process can describe a
training job, follow its progress and read a model's manifest without importing the training
side.
"""

from dataclasses import asdict, dataclass, field, fields

from rvaed.core.errors import RvaedError
from rvaed.core.kit import Kit
from rvaed.core.midifile import MAX_FILE_BYTES
from rvaed.core.pattern import Grid
from rvaed.model.latent import LATENT


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the VAE. Defaults are the RhythmVAE paper's: two 512-unit layers each side.

    ``leaky_slope`` 0.3 is the Keras/tfjs LeakyReLU default the original device trained with.
    """

    encoder_hidden: tuple[int, ...] = (512, 512)
    decoder_hidden: tuple[int, ...] = (512, 512)
    leaky_slope: float = 0.3

    def __post_init__(self) -> None:
        for name in ("encoder_hidden", "decoder_hidden"):
            sizes = tuple(getattr(self, name))
            if not sizes or not all(isinstance(n, int) and n > 0 for n in sizes):
                raise RvaedError(f"model {name}: expected layer sizes > 0, got {sizes!r}")
            object.__setattr__(self, name, sizes)

    def to_dict(self) -> dict:
        return {**asdict(self), "latent": LATENT}

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return cls(tuple(data["encoder_hidden"]), tuple(data["decoder_hidden"]),
                   float(data["leaky_slope"]))


@dataclass(frozen=True)
class LossWeights:
    """The original device's loss: BCE onsets + 2.5 MSE velocities + 5.0 MSE offsets + KL.

    ``hits_only`` counts velocity and offset errors only in cells that hold a hit: the
    velocity of a silent cell is meaningless, and learning it blurs the loud/soft contrast.
    """

    onsets: float = 1.0
    velocities: float = 2.5
    offsets: float = 5.0
    kl: float = 1.0
    hits_only: bool = False


# The integer settings of a run and the values each can work with (low, high; None: no limit).
# Batch norm cannot train on one window per step; torch seeds are unsigned 64-bit integers.
INTEGER_LIMITS: dict[str, tuple[int, int | None]] = {
    "epochs": (1, None), "batch_size": (2, None), "seed": (0, 2**64 - 1), "threads": (1, None),
    "min_split_windows": (1, None)}


def out_of_limits(name: str, value: object) -> str | None:
    """What ``value`` of integer setting ``name`` should have been, or None when it works."""
    low, high = INTEGER_LIMITS[name]
    if isinstance(value, int) and low <= value and (high is None or value <= high):
        return None
    wanted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return f"expected {wanted}, got {value!r}"


@dataclass(frozen=True)
class TrainOptions:
    """The training loop: Adam at ``learning_rate``, batches of ``batch_size``, about 1/6 of
    the windows (whole files where it can) held out.

    ``patience`` epochs without a better validation loss stop the run (None: never).
    A set of fewer than ``min_split_windows`` windows is not split: it serves as both the
    training and the validation set (a musician's two files are meant to be overfitted).
    """

    epochs: int = 150
    batch_size: int = 64
    learning_rate: float = 1e-3
    validation_fraction: float = 1 / 6
    min_split_windows: int = 12
    patience: int | None = 30
    seed: int = 0
    threads: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        for name in INTEGER_LIMITS:
            if wrong := out_of_limits(name, getattr(self, name)):
                raise RvaedError(f"training {name}: {wrong}")
        if not 0 < self.validation_fraction < 1:
            raise RvaedError("training validation_fraction: expected a number between 0 and 1")
        if self.patience is not None and self.patience < 1:
            raise RvaedError("training patience: expected a positive integer or none")

    def to_dict(self) -> dict:
        """The settings recorded in a model's manifest."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["model"] = self.model.to_dict()
        data["loss"] = asdict(self.loss)
        return data


@dataclass(frozen=True)
class Progress:
    """One finished epoch: losses, onset F1 on the validation windows, time left."""

    epoch: int
    epochs: int
    loss: float
    val_loss: float
    val_onset_f1: float
    best_epoch: int
    elapsed: float
    eta: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IngestOptions:
    """How files become windows. ``channel`` counts 1-16 as musicians do; "auto" finds the
    drum channels of each file (core/windows.py, drum_channels); None = all.
    ``meter_from_data``: the meter of ``grid`` is replaced by the one the files are in (see
    rvaed.training.dataset.read_meter). ``workers``: processes that parse files (None = one
    per CPU; 1 = this process only)."""

    kit: Kit
    grid: Grid = field(default_factory=Grid)
    channel: int | str | None = "auto"
    min_onsets: int = 4
    hop_bars: int = 1
    max_file_bytes: int = MAX_FILE_BYTES
    workers: int | None = None
    meter_from_data: bool = False  # the grid's meter is the files' own when they agree

    def __post_init__(self) -> None:
        if self.channel not in (None, "auto") and (
            not isinstance(self.channel, int) or not 1 <= self.channel <= 16
        ):
            raise RvaedError(f"channel: expected 1-16, auto or all channels, "
                             f"got {self.channel!r}")
        limits = [("min_onsets", 0), ("hop_bars", 1), ("max_file_bytes", 1)]
        if self.workers is not None:
            limits.append(("workers", 1))
        for name, low in limits:
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise RvaedError(f"{name}: expected an integer >= {low}, got {value!r}")

    @property
    def channel_name(self) -> str:
        if self.channel == "auto":
            return "the drum channels"
        return "any channel" if self.channel is None else f"channel {self.channel}"

"""rvaed: a headless drum-groove daemon built around a small variational autoencoder."""

__version__ = "0.1.0"

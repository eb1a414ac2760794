"""Data the corpus makes itself (no downloads): labelled sets of each model's input shape.

Every recipe returns ``Arrays`` (float32 PyTorch layout, int64 labels; ``target_*`` is the training
target when it is not the label: a reconstruction, per-pixel classes). Seeded: the same call gives the
same arrays.

May import: numpy, tinyprune.data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyprune.data import load_digits


@dataclass
class Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    target_train: np.ndarray | None = None   # None: train on y_train (a classifier)
    loss: str = "ce"                          # ce (classes), ce2d (per-pixel classes), mse (reconstruction)


def digits_gray(shape, classes, seed=0) -> Arrays:
    """scikit-learn digits resized to (1, H, W), the project's own digits split."""
    ds = load_digits(tuple(shape))
    return Arrays(ds.x_train, ds.y_train, ds.x_test, ds.y_test)


def digits_rgb(shape, classes, seed=0) -> Arrays:
    """Digits resized to (3, H, W) and coloured: a random background and ink colour per sample, so the
    three channels differ and the model has to look at shape, not colour."""
    c, h, w = shape
    ds = load_digits((1, h, w))
    rng = np.random.default_rng(seed)

    def tint(x):
        bg = rng.uniform(0.0, 0.45, (len(x), 3, 1, 1)).astype(np.float32)
        ink = rng.uniform(0.55, 1.0, (len(x), 3, 1, 1)).astype(np.float32)
        return (bg + x * (ink - bg)).astype(np.float32)
    return Arrays(tint(ds.x_train), ds.y_train, tint(ds.x_test), ds.y_test)


def digits_seg(shape, classes, seed=0) -> Arrays:
    """Digits (1, H, W) with per-pixel classes: ink intensity in ``classes`` bands (0 = background).
    The .npz labels (per sample, below ``classes``) are the digit modulo ``classes``: a dense output
    is scored by agreement, not by these labels."""
    ds = load_digits(tuple(shape))
    bands = np.clip((ds.x_train[:, 0] * classes).astype(np.int64), 0, classes - 1)
    return Arrays(ds.x_train, ds.y_train % classes, ds.x_test, ds.y_test % classes, bands, "ce2d")


def _split(x, y, n_test):
    return Arrays(x[n_test:], y[n_test:], x[:n_test], y[:n_test])


def kws_synth(shape, classes, seed=0, n=1200) -> Arrays:
    """Keyword-spotting-like MFCC maps (1, 49, 10): each class is two Gaussian blobs at class-specific
    (time, coefficient) places, shifted in time per sample, plus noise."""
    _, t, f = shape
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).uniform((0.2 * t, 0, 0.2 * t, 0), (0.8 * t, f, 0.8 * t, f), (classes, 4))
    y = rng.integers(0, classes, n)
    tt, ff = np.meshgrid(np.arange(t), np.arange(f), indexing="ij")
    x = rng.normal(0, 0.3, (n, 1, t, f))
    shift = rng.integers(-6, 7, n)
    for i in range(n):
        c = centres[y[i]]
        for (ct, cf), a in (((c[0], c[1]), 2.0), ((c[2], c[3]), -1.5)):
            x[i, 0] += a * np.exp(-((tt - ct - shift[i]) ** 2 / 18.0 + (ff - cf) ** 2 / 2.0))
    return _split(x.astype(np.float32), y.astype(np.int64), n // 4)


def tones(shape, classes, seed=0, n=1200) -> Arrays:
    """1-D "audio" (1, L): a sine whose frequency band is the class, random phase and amplitude, noise."""
    _, length = shape
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    freq = (2 + 3 * y + rng.uniform(0, 1.5, n))[:, None] / 64.0   # cycles per sample
    t = np.arange(length)[None]
    x = rng.uniform(0.4, 1.0, (n, 1)) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1)))
    x = x + rng.normal(0, 0.2, x.shape)
    return _split(x[:, None].astype(np.float32), y.astype(np.int64), n // 4)


def spectra_ae(shape, classes, seed=0, n=1200) -> Arrays:
    """Machine-sound-like log-mel frames (640 = 5 frames x 128 bins) for the autoencoder: a smooth
    spectrum with a few harmonic peaks, the same over the 5 frames, plus noise. Target: the input.
    Labels: the position of the input's largest value (``argmax``), so top-1 "accuracy" says whether the
    reconstruction keeps the strongest peak in place."""
    (features,) = shape
    bins = features // 5
    rng = np.random.default_rng(seed)
    k = np.arange(bins)[None]
    base = rng.uniform(1, 6, (n, 1))
    spec = -0.02 * k + rng.normal(0, 0.05, (n, 1))
    for h in range(1, 4):
        spec = spec + rng.uniform(0.5, 1.5, (n, 1)) / h * np.exp(-(k - base * 8 * h) ** 2 / 8.0)
    x = np.tile(spec, (1, 5)) + rng.normal(0, 0.05, (n, features))
    x = x.astype(np.float32)
    a = _split(x, x.argmax(1).astype(np.int64), n // 4)
    a.target_train, a.loss = a.x_train, "mse"
    return a


RECIPES = {f.__name__: f for f in (digits_gray, digits_rgb, digits_seg, kws_synth, tones, spectra_ae)}

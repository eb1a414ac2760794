"""Datasets for calibration and evaluation: the built-in ``digits`` and user ``.npz`` files.

Layout (see docs/data.md): ``x`` is float32 in the model's PyTorch layout, (N, C, H, W) for
2-D models or (N, C, L) for 1-D models; ``y`` is (N,) integer class labels. Nothing is downloaded:
``digits`` is scikit-learn's bundled copy of the UCI handwritten digits (1797 8x8 images).

This module may import only tinyprune.errors (no torch, no TensorFlow: it is cheap to import).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune.errors import UserInputError

DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.25
BUILTIN = ("digits",)


@dataclass
class Dataset:
    x_train: np.ndarray   # float32, PyTorch layout (N, C, H, W) or (N, C, L)
    y_train: np.ndarray   # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    name: str = ""

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_dataset(spec: str | os.PathLike, input_shape: tuple[int, ...] | None = None) -> Dataset:
    """Load ``digits`` or an ``.npz`` file.

    ``input_shape`` is the model's input shape including the batch of 1, e.g. (1, 1, 16, 16)
    or (1, 1, 64). ``digits`` is resized to it; an ``.npz`` is checked
    against it (UserInputError naming expected and actual shapes when it does not fit).
    """
    shape = _sample_shape(input_shape)
    if str(spec) == "digits":
        return load_digits(shape)
    return load_npz(spec, shape)


def _sample_shape(input_shape) -> tuple[int, ...] | None:
    """Drop the batch dimension: (1, C, H, W) -> (C, H, W); (1, C, L) -> (C, L)."""
    if input_shape is None:
        return None
    s = tuple(int(d) for d in input_shape)
    if len(s) not in (3, 4) or s[0] != 1 or min(s) < 1:
        raise UserInputError(f"input shape {tuple(input_shape)} is not (1, C, H, W) or (1, C, L)",
                             hint="pass e.g. --input-shape 1,1,16,16 for images or 1,1,64 for 1-D signals")
    return s[1:]


def load_digits(sample_shape: tuple[int, ...] | None = None) -> Dataset:
    """scikit-learn's 8x8 digits scaled to [0, 1], resized bilinearly to ``sample_shape``.

    (C, H, W): the image is resized to H x W and repeated over C channels. (C, L): the 64 pixels
    (row-major) are resized linearly to C*L values and reshaped to (C, L), so (1, 64) is the raw
    row-major sequence and (8, 8) gives 8 channels (image rows) of 8 steps. Split: a fixed seeded
    stratified 75/25 train/test split.
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    d = _sk_digits()
    images = (d.images / 16.0).astype(np.float32)           # (1797, 8, 8) in [0, 1]
    labels = d.target.astype(np.int64)
    shape = tuple(sample_shape) if sample_shape is not None else (1, 8, 8)
    if len(shape) == 3:
        c, h, w = shape
        x = _resize_bilinear(images, h, w)[:, None, :, :]
        x = np.repeat(x, c, axis=1) if c > 1 else x
    elif len(shape) == 2:
        c, length = shape
        flat = images.reshape(len(images), 64)
        if c * length != 64:
            flat = _resize_linear(flat, c * length)
        x = flat.reshape(len(images), c, length)
    else:
        raise UserInputError(f"digits cannot be shaped to {shape}", hint="use (C, H, W) or (C, L)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, labels, test_size=DIGITS_TEST_FRACTION,
                                              random_state=DIGITS_SEED, stratify=labels)
    return Dataset(x_tr, y_tr, x_te, y_te, classes=10, name="digits")


def _resize_linear(a: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation along the last axis (align_corners=False, like bilinear below)."""
    m = a.shape[-1]
    pos = (np.arange(n, dtype=np.float64) + 0.5) * m / n - 0.5
    pos = np.clip(pos, 0, m - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, m - 1)
    f = (pos - i0).astype(np.float32)
    return a[..., i0] * (1 - f) + a[..., i1] * f


def _resize_bilinear(images: np.ndarray, h: int, w: int) -> np.ndarray:
    """Separable bilinear resize of (N, H0, W0) images (half-pixel centres, edge clamped)."""
    out = _resize_linear(images, w)                            # width
    out = _resize_linear(out.swapaxes(1, 2), h).swapaxes(1, 2)  # height
    return out.astype(np.float32)


def load_npz(path: str | os.PathLike, sample_shape: tuple[int, ...] | None = None,
             test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Load ``x``/``y`` (and optional ``x_test``/``y_test``) from an .npz file.

    Without ``x_test``, a seeded split keeps ``test_fraction`` of the samples for evaluation.
    """
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"data file not found: {p}",
                             hint="pass --data digits or an .npz file with arrays x (N, C, H, W) and y (N,)")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise UserInputError(f"{p} is not a readable .npz file ({type(e).__name__}: {e})",
                             hint="save the data with numpy.savez(path, x=x, y=y)") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise UserInputError(f"{p} has no array '{key}' (it has: {', '.join(sorted(arrays)) or 'nothing'})",
                                 hint="save the data with numpy.savez(path, x=x, y=y): x float32 in the model's "
                                      "PyTorch layout (N, C, H, W) or (N, C, L), y integer labels (N,)")
    x = _check_x(arrays["x"], "x", p, sample_shape)
    y = _check_y(arrays["y"], "y", p, len(x))
    if "x_test" in arrays or "y_test" in arrays:
        if not ("x_test" in arrays and "y_test" in arrays):
            raise UserInputError(f"{p} has only one of 'x_test'/'y_test'", hint="provide both or neither")
        x_te = _check_x(arrays["x_test"], "x_test", p, sample_shape or x.shape[1:])
        y_te = _check_y(arrays["y_test"], "y_test", p, len(x_te))
        x_tr, y_tr = x, y
    else:
        if len(x) < 2:
            raise UserInputError(f"{p} has {len(x)} sample(s); at least 2 are needed to calibrate and evaluate")
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(x))
        n_test = max(1, int(round(len(x) * test_fraction)))
        x_tr, y_tr, x_te, y_te = x[idx[n_test:]], y[idx[n_test:]], x[idx[:n_test]], y[idx[:n_test]]
    classes = int(max(y.max(initial=0), y_te.max(initial=0))) + 1
    return Dataset(x_tr, y_tr, x_te, y_te, classes=classes, name=p.name)


def _check_x(x: np.ndarray, key: str, p: Path, sample_shape) -> np.ndarray:
    if x.dtype.kind not in "fiu":
        raise UserInputError(f"{p}: '{key}' has dtype {x.dtype}; expected float32 numbers")
    if x.ndim not in (3, 4):
        raise UserInputError(f"{p}: '{key}' has shape {x.shape}; expected (N, C, H, W) or (N, C, L)",
                             hint="x must be in the model's PyTorch layout, one sample per row")
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise UserInputError(
            f"{p}: '{key}' has samples of shape {tuple(x.shape[1:])} but the model expects {tuple(sample_shape)} "
            f"(x shape {x.shape}, expected (N, {', '.join(map(str, sample_shape))}))",
            hint="store x in the model's PyTorch layout (channels first), or pass the right --input-shape")
    if len(x) == 0:
        raise UserInputError(f"{p}: '{key}' is empty")
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_y(y: np.ndarray, key: str, p: Path, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise UserInputError(f"{p}: '{key}' has shape {y.shape}; expected ({n},), one label per sample")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise UserInputError(f"{p}: '{key}' has dtype {y.dtype}; expected integer class labels")
    y = y.astype(np.int64)
    if y.min(initial=0) < 0:
        raise UserInputError(f"{p}: '{key}' has negative labels; expected class indices 0..K-1")
    return y

"""Datasets for calibration and evaluation: the built-in ``digits`` and user ``.npz`` files.

Layout (see docs/data.md): ``x`` is float32 in the model's PyTorch layout, (N, C, H, W) for
2-D models, (N, C, L) for 1-D models or (N, F) for models on feature vectors; ``y`` is (N,) integer class labels. Nothing is downloaded:
``digits`` is scikit-learn's bundled copy of the UCI handwritten digits (1797 8x8 images).

This is the one data loader: convert, prune, validate and codegen --check all read data through it
(``load_dataset``; ``read_npz`` + ``check_values`` for codegen's int8/float inputs; ``from_arrays``
for in-memory arrays), so a bad file is refused the same way, at load, by every stage (exit code 2).

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
    labelled: bool = True   # False: x only (e.g. an autoencoder's data); y_* hold -1 and must not be scored

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
    if isinstance(spec, Dataset):
        if shape is not None and spec.sample_shape != tuple(shape):
            raise UserInputError(f"data {spec.name or 'in memory'} has samples of shape {spec.sample_shape} but the "
                                 f"model expects {tuple(shape)}",
                                 hint="give samples in the model's PyTorch layout (N, C, H, W) or (N, C, L)")
        return spec
    if str(spec) == "digits":
        return load_digits(shape)
    return load_npz(spec, shape)


def _sample_shape(input_shape) -> tuple[int, ...] | None:
    """Drop the batch dimension: (1, C, H, W) -> (C, H, W); (1, C, L) -> (C, L); (1, F) -> (F,)."""
    if input_shape is None:
        return None
    s = tuple(int(d) for d in input_shape)
    if len(s) not in (2, 3, 4) or s[0] != 1 or min(s) < 1:
        raise UserInputError(f"input shape {tuple(input_shape)} is not (1, C, H, W), (1, C, L) or (1, F)",
                             hint="pass e.g. --input-shape 1,1,16,16 for images, 1,1,64 for 1-D signals or 1,640 "
                                  "for feature vectors")
    return s[1:]


def load_digits(sample_shape: tuple[int, ...] | None = None) -> Dataset:
    """scikit-learn's 8x8 digits scaled to [0, 1], resized bilinearly to ``sample_shape``.

    (C, H, W): the image is resized to H x W and repeated over C channels. (C, L): the 64 pixels
    (row-major) are resized linearly to C*L values and reshaped to (C, L), so (1, 64) is the raw
    row-major sequence and (8, 8) gives 8 channels (image rows) of 8 steps; (F,): resized to F values. Split: a fixed seeded
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
    elif len(shape) in (1, 2):
        n = int(np.prod(shape))
        flat = images.reshape(len(images), 64)
        if n != 64:
            flat = _resize_linear(flat, n)
        x = flat.reshape((len(images),) + shape)
    else:
        raise UserInputError(f"digits cannot be shaped to {shape}", hint="use (C, H, W), (C, L) or (F,)")
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


NPZ_HINT = ("save the data with numpy.savez(path, x=x, y=y): x float32 in the model's PyTorch layout "
            "(N, C, H, W), (N, C, L) or (N, F), y integer labels (N,); see docs/data.md")
# Accepted names: the documented ones first, then the aliases `tinyprune prune` used to document.
TRAIN_KEYS = {"x": ("x", "x_train"), "y": ("y", "y_train")}


def load_npz(path: str | os.PathLike, sample_shape: tuple[int, ...] | None = None,
             test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Load ``x``/``y`` (or ``x_train``/``y_train``) and optional ``x_test``/``y_test`` from an .npz file.

    Without ``x_test``, a seeded split keeps ``test_fraction`` of the samples for evaluation.
    Every array is checked (UserInputError, exit code 2, naming the file, the array and the problem):
    numeric dtype, finite values, at least one sample, matching lengths, integer labels >= 0.
    """
    p = Path(path)
    arrays = read_npz(p)
    x_key = _pick_key(arrays, p, "x")
    x = _check_x(arrays[x_key], x_key, p, sample_shape)
    if not has_labels(arrays):
        return _unlabelled(arrays, x, p, sample_shape, test_fraction, seed)
    y_key = _pick_key(arrays, p, "y")
    y = _check_y(arrays[y_key], y_key, p, len(x))
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


X_KEYS = TRAIN_KEYS["x"] + ("x_test",)


def has_labels(arrays: dict) -> bool:
    """False only for unlabelled data: inputs and nothing else (``x``/``x_train``, optionally ``x_test``).
    Any other array (``labels``, ``y_test`` alone...) means labels under a wrong name: loading names it."""
    return not (set(arrays) <= set(X_KEYS) and any(k in arrays for k in TRAIN_KEYS["x"]))


def is_unlabelled(spec) -> bool:
    """``spec`` (an .npz path or a Dataset) is data without labels (x only)."""
    if isinstance(spec, Dataset):
        return not spec.labelled
    if spec is None or (isinstance(spec, str) and spec in BUILTIN) or not isinstance(spec, (str, os.PathLike)):
        return False
    return not has_labels(read_npz(spec))


def _unlabelled(arrays: dict, x: np.ndarray, p: Path, sample_shape, test_fraction: float, seed: int) -> Dataset:
    """An .npz with ``x`` (and optionally ``x_test``) and no labels: inputs only, for calibration,
    validation (bit-exactness) and agreement; nothing is scored against labels."""
    if "x_test" in arrays:
        x_te = _check_x(arrays["x_test"], "x_test", p, sample_shape or x.shape[1:])
        x_tr = x
    else:
        if len(x) < 2:
            raise UserInputError(f"{p} has {len(x)} sample(s); at least 2 are needed to calibrate and evaluate")
        idx = np.random.default_rng(seed).permutation(len(x))
        n_test = max(1, int(round(len(x) * test_fraction)))
        x_tr, x_te = x[idx[n_test:]], x[idx[:n_test]]
    none = lambda a: np.full(len(a), -1, dtype=np.int64)  # noqa: E731
    return Dataset(x_tr, none(x_tr), x_te, none(x_te), classes=0, name=p.name, labelled=False)


def input_shape_of_data(spec) -> tuple[int, ...] | None:
    """The model input shape (1, *sample shape) an .npz file's samples have, or None for the
    built-in sets (``digits`` is resized to any shape) and in-memory Datasets without a path."""
    if spec is None or (isinstance(spec, str) and spec in BUILTIN):
        return None
    if isinstance(spec, Dataset):
        return (1,) + tuple(int(d) for d in spec.x_train.shape[1:])
    p = Path(spec)
    arrays = read_npz(p)
    x = arrays[_pick_key(arrays, p, "x")]
    if x.ndim < 2:
        return None        # _check_x names the problem when the data is loaded
    return (1,) + tuple(int(d) for d in x.shape[1:])


def from_arrays(x_train, y_train, x_test, y_test, sample_shape: tuple[int, ...] | None = None,
                name: str = "arrays") -> Dataset:
    """A Dataset from in-memory arrays (the Python API's data), with the same checks as an .npz."""
    where = Path(name)
    x_tr = _check_x(np.asarray(x_train), "x_train", where, sample_shape)
    y_tr = _check_y(np.asarray(y_train), "y_train", where, len(x_tr))
    x_te = _check_x(np.asarray(x_test), "x_test", where, sample_shape or x_tr.shape[1:])
    y_te = _check_y(np.asarray(y_test), "y_test", where, len(x_te))
    classes = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
    return Dataset(x_tr, y_tr, x_te, y_te, classes=classes, name=name)


def as_dataset(data, sample_shape: tuple[int, ...] | None = None, test_fraction: float = 0.25,
               seed: int = 0):
    """What the Python API accepts as data, made into something the stages take: a path or ``"digits"``
    (returned as it is), a Dataset (returned), NumPy arrays ``(x, y)`` (split like an .npz without
    x_test) or ``(x_train, y_train, x_test, y_test)``, an object with those four attributes, a torch
    ``Dataset`` of ``(x, y)`` items or a ``DataLoader`` of ``(x, y)`` batches (read once, here). None stays None.
    Every array gets the .npz checks (UserInputError, exit 2)."""
    if data is None or isinstance(data, (str, os.PathLike, Dataset)):
        return data
    where = type(data).__name__
    if isinstance(data, (tuple, list)) and len(data) == 4:
        return from_arrays(*data, sample_shape=sample_shape)
    if all(hasattr(data, k) for k in ("x_train", "y_train", "x_test", "y_test")):
        return from_arrays(data.x_train, data.y_train, data.x_test, data.y_test, sample_shape=sample_shape,
                           name=where)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (np.asarray(a) for a in data)
        where = "arrays"
    elif hasattr(data, "dataset") and hasattr(data, "__iter__"):      # a torch DataLoader: (x, y) batches
        x, y = _stack_pairs(list(data), where, batched=True)
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):   # a torch Dataset: (x, y) items
        x, y = _stack_pairs([data[i] for i in range(len(data))], where, batched=False)
    else:
        raise UserInputError(f"cannot use a {where} as data",
                             hint="pass 'digits', an .npz path, (x, y) NumPy arrays, a tinyprune.data.Dataset, "
                                  "or a torch Dataset/DataLoader of (x, y)")
    x = _check_x(np.asarray(x), "x", Path(where), sample_shape)
    y = _check_y(np.asarray(y), "y", Path(where), len(x))
    if len(x) < 2:
        raise UserInputError(f"{where} has {len(x)} sample(s); at least 2 are needed to calibrate and evaluate")
    idx = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    return from_arrays(x[idx[n_test:]], y[idx[n_test:]], x[idx[:n_test]], y[idx[:n_test]], name=where)


def _stack_pairs(items: list, where: str, batched: bool) -> tuple[np.ndarray, np.ndarray]:
    """[(x, y), ...] items (or batches) of tensors/arrays -> (x, y) arrays."""
    if not items:
        raise UserInputError(f"the {where} is empty", hint="give at least 2 samples")
    xs, ys = [], []
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise UserInputError(f"item {i} of the {where} is a {type(item).__name__}, not an (x, y) pair",
                                 hint="make __getitem__ return (input tensor, integer label)")
        x, y = (np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for v in item)
        xs.append(x if batched else x[None])
        ys.append(np.atleast_1d(y) if batched else np.asarray(y).reshape(1))
    try:
        return np.concatenate(xs), np.concatenate(ys)
    except ValueError as e:
        raise UserInputError(f"the samples of the {where} differ in shape ({e})") from None


def check_classes(ds: Dataset, outputs: int, name: str | None = None) -> None:
    """UserInputError (exit 2) when the data's labels do not fit a model with ``outputs`` outputs, or the
    data is digits (10 classes) and the model does not have 10 outputs: digits' labels are not its classes.
    Data without labels fits any model."""
    if not ds.labelled:
        return
    if ds.name == "digits" and outputs != ds.classes:
        raise UserInputError(f"--data digits has 10 classes but the model has {outputs} outputs: digits' labels "
                             "are not this model's classes",
                             hint="give labelled data for this model (--data file.npz, docs/data.md), or no --data "
                                  "(build then validates on random inputs; accuracy not measured)")
    if ds.classes > outputs:
        raise UserInputError(f"data {name or ds.name} has labels up to {ds.classes - 1} ({ds.classes} classes) but "
                             f"the model has {outputs} outputs: these are not this model's classes",
                             hint=f"give --data labelled with this model's classes 0..{outputs - 1}")


def fingerprint(ds: Dataset) -> str:
    """SHA-256 of a Dataset's arrays (shapes, dtypes and bytes): the stage cache's key for in-memory data."""
    import hashlib
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an .npz file, or UserInputError naming the file and what is wrong with it
    (missing, not a zip archive, a single .npy, pickled objects, a corrupt member)."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"data file not found: {p}", hint="pass --data digits or an .npz file; " + NPZ_HINT)
    if not p.is_file():
        raise UserInputError(f"data file {p} is a directory, not an .npz file", hint=NPZ_HINT)
    with open(p, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise UserInputError(f"{p} is a single .npy array, not an .npz archive of named arrays", hint=NPZ_HINT)
    if not zipfile.is_zipfile(p):
        raise UserInputError(f"{p} is not an .npz file (not a zip archive of arrays; corrupt, truncated or "
                             "another format?)", hint=NPZ_HINT)
    arrays = {}
    try:
        with np.load(p, allow_pickle=False) as z:
            for key in z.files:
                try:
                    arrays[key] = z[key]
                except ValueError as e:
                    if "pickle" not in str(e):
                        raise
                    raise UserInputError(f"{p}: array '{key}' holds Python objects (dtype object), not numbers",
                                         hint="store numeric arrays, e.g. np.asarray(x, dtype=np.float32)"
                                         ) from None
    except UserInputError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile/zlib/numpy raise many kinds for a damaged archive
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserInputError(f"{p} is not a readable .npz file ({type(e).__name__}: {first})",
                             hint=NPZ_HINT) from None
    return arrays


def _pick_key(arrays: dict, p: Path, role: str) -> str:
    names = [k for k in TRAIN_KEYS[role] if k in arrays]
    if len(names) > 1:
        raise UserInputError(f"{p} has both '{names[0]}' and '{names[1]}'; they mean the same array",
                             hint=f"keep one of them ('{role}' is the documented name)")
    if not names:
        found = ", ".join(f"'{k}'" for k in sorted(arrays)) or "no arrays"
        raise UserInputError(f"{p} has no array '{role}' (it has: {found}; expected: 'x' and 'y', optionally "
                             "'x_test' and 'y_test'; 'x_train'/'y_train' are accepted for 'x'/'y'; data without "
                             "labels holds 'x' (and 'x_test') only)",
                             hint=NPZ_HINT)
    return names[0]


def check_values(a: np.ndarray, key: str, p: Path) -> None:
    """UserInputError unless ``a`` holds at least one number and every one of them is finite."""
    if a.dtype.kind not in "fiu":
        raise UserInputError(f"{p}: '{key}' has dtype {a.dtype}; expected numbers (float32 inputs)",
                             hint="store numeric arrays, e.g. np.asarray(x, dtype=np.float32)")
    if a.size == 0:
        raise UserInputError(f"{p}: '{key}' is empty (shape {a.shape})", hint="store at least one sample")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            n_nan = int(np.isnan(a).sum())
            first = int(np.argmax(bad.reshape(len(a), -1).any(axis=1))) if a.ndim else 0
            raise UserInputError(f"{p}: '{key}' has {n_nan} NaN and {int(bad.sum()) - n_nan} infinite value(s) "
                                 f"(first in sample {first}); every input must be a finite number",
                                 hint="clean the data before saving it (drop those samples or replace the values)")


def _check_x(x: np.ndarray, key: str, p: Path, sample_shape) -> np.ndarray:
    check_values(x, key, p)
    if x.ndim not in (2, 3, 4):
        raise UserInputError(f"{p}: '{key}' has shape {x.shape}; expected (N, C, H, W), (N, C, L) or (N, F)",
                             hint="x must be in the model's PyTorch layout, one sample per row")
    if sample_shape is not None and tuple(x.shape[1:]) != tuple(sample_shape):
        raise UserInputError(
            f"{p}: '{key}' has samples of shape {tuple(x.shape[1:])} but the model expects {tuple(sample_shape)} "
            f"(x shape {x.shape}, expected (N, {', '.join(map(str, sample_shape))}))",
            hint="store x in the model's PyTorch layout (channels first), or pass the right --input-shape")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(x, dtype=np.float32)
    if x.dtype != np.float32 and not np.isfinite(out).all():
        raise UserInputError(f"{p}: '{key}' has values beyond float32's range (+-3.4e38)",
                             hint="scale the inputs the way the model was trained")
    return out


def _check_y(y: np.ndarray, key: str, p: Path, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise UserInputError(f"{p}: '{key}' has shape {y.shape}; expected ({n},), one label per sample "
                             f"(x has {n} samples)")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise UserInputError(f"{p}: '{key}' has {int((~np.isfinite(y)).sum())} NaN or infinite label(s); "
                                 "expected integer class labels 0..K-1")
        if not np.all(y == np.round(y)):
            raise UserInputError(f"{p}: '{key}' has non-integer labels (e.g. {y[y != np.round(y)][0]!r}); "
                                 "expected integer class labels 0..K-1",
                                 hint="store class indices, not one-hot vectors or probabilities")
    elif y.dtype.kind not in "iu":
        raise UserInputError(f"{p}: '{key}' has dtype {y.dtype}; expected integer class labels 0..K-1",
                             hint="map class names to indices 0..K-1 before saving")
    if y.min(initial=0) < 0:
        raise UserInputError(f"{p}: '{key}' has negative labels (min {y.min()}); expected class indices 0..K-1")
    return y.astype(np.int64)

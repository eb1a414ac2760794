"""The built-in trainer (Adam, cross-entropy, optional distillation from the unpruned model),
accuracy and FGSM-accuracy evaluation, and the data sources the prune stage accepts.

May import: torch, numpy, tinyprune.errors, tinyprune.data (optional). Not other stages.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from tinyprune.errors import UserInputError


@dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def as_data(data, input_shape=None) -> Data | None:
    """Accept a Dataset-like object, an (x_train, y_train, x_test, y_test) tuple, ``"digits"``, or a
    path to an .npz with x_train, y_train[, x_test, y_test]."""
    if data is None:
        return None
    if isinstance(data, Data):
        return data
    if isinstance(data, (str, Path)):
        return load_data(str(data), input_shape)
    if isinstance(data, (tuple, list)) and len(data) >= 4:
        return Data(*[np.asarray(a) for a in data[:4]])
    if all(hasattr(data, k) for k in ("x_train", "y_train", "x_test", "y_test")):
        return Data(np.asarray(data.x_train), np.asarray(data.y_train), np.asarray(data.x_test), np.asarray(data.y_test))
    raise UserInputError(f"cannot use {type(data).__name__} as data",
                         hint="pass 'digits', an .npz path, or an object with x_train, y_train, x_test, y_test")


def load_data(spec: str, input_shape=None) -> Data:
    shape = tuple(input_shape[1:]) if input_shape is not None else None
    try:
        from tinyprune.data import load_dataset  # the data stage, once available
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset(spec, input_shape=tuple(input_shape)) if input_shape is not None else load_dataset(spec)
        return as_data(ds)
    if spec == "digits":
        return _digits(shape)
    p = Path(spec)
    if not p.exists():
        raise UserInputError(f"data file {spec} not found", hint="pass 'digits' or an existing .npz file")
    z = np.load(p)
    if "x_train" not in z or "y_train" not in z:
        raise UserInputError(f"{spec} has no x_train / y_train arrays", hint="save it with np.savez(x_train=..., y_train=..., x_test=..., y_test=...)")
    xt, yt = z["x_train"].astype(np.float32), z["y_train"].astype(np.int64)
    if "x_test" in z:
        return Data(xt, yt, z["x_test"].astype(np.float32), z["y_test"].astype(np.int64))
    n = max(1, len(xt) // 5)
    return Data(xt[n:], yt[n:], xt[:n], yt[:n])


def _digits(shape) -> Data:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    if shape is not None and tuple(shape) != (1, 8, 8):
        if len(shape) == 3 and shape[0] == 1:
            x = torch.nn.functional.interpolate(torch.from_numpy(x), size=tuple(shape[1:]), mode="bilinear",
                                                align_corners=False).numpy()
        else:
            raise UserInputError(f"digits are 1x8x8 images; the model expects {tuple(shape)}")
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    n_test = len(x) // 5
    te, tr = idx[:n_test], idx[n_test:]
    return Data(x[tr], y[tr], x[te], y[te])


class Trainer:
    """Seeded Adam/SGD trainer with cross-entropy and optional distillation (KL at temperature T)."""

    def __init__(self, data: Data, *, lr=2e-3, batch_size=64, optimizer="adam", seed=0, teacher=None,
                 distill_alpha=0.5, distill_t=4.0, threads=1):
        self.data, self.lr, self.batch_size = data, lr, batch_size
        self.optimizer, self.seed, self.teacher = optimizer, seed, teacher
        self.alpha, self.t = distill_alpha, distill_t
        self.calls = 0
        torch.set_num_threads(max(1, threads))

    def batches(self, n: int):
        g = torch.Generator().manual_seed(self.seed + 1)
        x = torch.from_numpy(self.data.x_train)
        y = torch.from_numpy(self.data.y_train).long()
        idx = torch.randperm(len(x), generator=g)
        return [(x[idx[i * self.batch_size:(i + 1) * self.batch_size]], y[idx[i * self.batch_size:(i + 1) * self.batch_size]])
                for i in range(min(n, max(1, len(x) // self.batch_size)))]

    def __call__(self, model: nn.Module, epochs: int, penalty=None, extra_params=None):
        if epochs <= 0:
            return
        self.calls += 1
        g = torch.Generator().manual_seed(self.seed * 1000 + self.calls)
        params = list(model.parameters()) + list(extra_params or [])
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr * 10, momentum=0.9)
        else:
            opt = torch.optim.Adam(params, lr=self.lr)
        x = torch.from_numpy(self.data.x_train)
        y = torch.from_numpy(self.data.y_train).long()
        teacher = self.teacher
        if teacher is not None:
            teacher.eval()
        steps = epochs * max(1, -(-len(x) // self.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), self.batch_size):
                b = perm[i:i + self.batch_size]
                if len(b) < 2:
                    continue
                out = model(x[b])
                loss = nn.functional.cross_entropy(out, y[b])
                if teacher is not None:
                    with torch.no_grad():
                        tl = teacher(x[b])
                    kd = nn.functional.kl_div(nn.functional.log_softmax(out / self.t, 1),
                                              nn.functional.softmax(tl / self.t, 1), reduction="batchmean")
                    loss = (1 - self.alpha) * loss + self.alpha * self.t * self.t * kd
                if penalty is not None:
                    loss = loss + penalty()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((pred == y).mean())


def fgsm_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Accuracy under the fast gradient sign attack (Goodfellow et al. 2015) with step ``eps``."""
    model.eval()
    xt = torch.from_numpy(x).clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xt), torch.from_numpy(y).long())
    (g,) = torch.autograd.grad(loss, xt)
    adv = (xt + eps * g.sign()).detach()
    with torch.no_grad():
        pred = model(adv).argmax(1).numpy()
    return float((pred == y).mean())

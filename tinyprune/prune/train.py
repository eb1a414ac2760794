"""The built-in trainer (Adam, cross-entropy, optional distillation from the unpruned model),
accuracy and FGSM-accuracy evaluation, and the data sources the prune stage accepts (all read and
checked by tinyprune.data, the one data loader).

May import: torch, numpy, tinyprune.errors, tinyprune.data. Not other stages.
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
    labelled: bool = True   # False: x only (tinyprune.data.Dataset.labelled); y_* must not be used


def as_data(data, input_shape=None) -> Data | None:
    """Accept ``"digits"``, a path to an .npz (see docs/data.md), an (x_train, y_train, x_test, y_test)
    tuple, (x, y) arrays, a torch Dataset/DataLoader (tinyprune.data.as_dataset), or an object with those attributes (e.g. a tinyprune.data.Dataset). Everything goes through
    tinyprune.data, so every array gets the same checks (finite numbers, integer labels, lengths)."""
    from tinyprune.data import Dataset, as_dataset, from_arrays, load_dataset

    if data is None:
        return None
    if isinstance(data, Data):
        return data
    sample_shape = tuple(input_shape[1:]) if input_shape is not None else None
    if not isinstance(data, (tuple, list)) or len(data) == 2:   # (x, y), torch Dataset/DataLoader, ...
        data = as_dataset(data, sample_shape)
    if isinstance(data, (str, Path)):
        ds = load_dataset(data, tuple(input_shape) if input_shape is not None else None)
    elif isinstance(data, Dataset):
        ds = data   # already checked when it was loaded
    elif isinstance(data, (tuple, list)) and len(data) >= 4:
        ds = from_arrays(*data[:4], sample_shape=sample_shape)
    elif all(hasattr(data, k) for k in ("x_train", "y_train", "x_test", "y_test")):
        ds = from_arrays(data.x_train, data.y_train, data.x_test, data.y_test, sample_shape=sample_shape,
                         name=type(data).__name__)
    else:
        raise UserInputError(f"cannot use {type(data).__name__} as data",
                             hint="pass 'digits', an .npz path, or an object with x_train, y_train, x_test, y_test")
    return Data(ds.x_train, ds.y_train, ds.x_test, ds.y_test, labelled=ds.labelled)


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
                if out.ndim != 2:
                    model.eval()
                    raise UserInputError(
                        f"fine-tuning trains a classifier (output (N, classes), one label per sample); this "
                        f"model's output has shape {tuple(out.shape[1:])} per sample (e.g. per-pixel classes)",
                        hint="prune it without fine-tuning (--epochs 0) with a data-free criterion (l1, l2), "
                             "or fine-tune it yourself after pruning")
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
        pred = _top1(model(torch.from_numpy(x)))
    return float((pred == y).mean())


def _top1(out: torch.Tensor) -> np.ndarray:
    """Predicted class per sample: the argmax over each sample's flattened output (as the convert
    stage measures agreement), so a per-pixel output gives one prediction per sample too."""
    return out.reshape(len(out), -1).argmax(1).numpy()


def fgsm_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, eps: float) -> float:
    """Accuracy under the fast gradient sign attack (Goodfellow et al. 2015) with step ``eps``."""
    model.eval()
    xt = torch.from_numpy(x).clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xt), torch.from_numpy(y).long())
    (g,) = torch.autograd.grad(loss, xt)
    adv = (xt + eps * g.sign()).detach()
    with torch.no_grad():
        pred = _top1(model(adv))
    return float((pred == y).mean())

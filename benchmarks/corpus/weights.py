"""Brief, seeded CPU training of the corpus' PyTorch models, cached outside the repository.

Random weights are not good enough: an untrained torchvision net's outputs are ~1e-8 and its int8
model collapses. Each model is trained for a few epochs on the data the corpus makes (``data.py``);
the state_dict is cached in ``$TINYPRUNE_CORPUS_CACHE`` (default ``~/.cache/tinyprune/corpus``) under a
key of the entry, the sources of this folder, the trainer's source and the torch/torchvision versions,
so a change to any of them retrains.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    d = os.environ.get("TINYPRUNE_CORPUS_CACHE")
    return Path(d) if d else Path.home() / ".cache" / "tinyprune" / "corpus"


def cache_key(entry) -> str:
    from tinyprune.example import train as trainer

    from . import torchvision_defs
    h = hashlib.sha256()
    h.update(repr((entry.name, entry.factory, entry.input_shape, entry.classes, entry.data, entry.epochs,
                   entry.train_samples, entry.lr, torch.__version__, torchvision_defs.version())).encode())
    for f in sorted(HERE.glob("*.py")):   # the registry (__init__.py) counts through the entry's fields above
        if f.name != "__init__.py":
            h.update(f.read_bytes())
    h.update(inspect.getsource(trainer).encode())
    h.update(Path(inspect.getfile(__import__("tinyprune.prune.zoo", fromlist=["zoo"]))).read_bytes())
    return h.hexdigest()[:16]


def _fit(model: nn.Module, x: np.ndarray, target: np.ndarray, loss: str, epochs: int, lr: float, seed: int = 0):
    """Adam + one-cycle on a non-classification target (mse: reconstruction; ce2d: per-pixel classes)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, tt = torch.from_numpy(x), torch.from_numpy(target)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    batch = 32
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    fn = nn.MSELoss() if loss == "mse" else nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            fn(model(xt[idx]), tt[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: np.ndarray, batch: int = 64) -> nn.Module:
    """Re-estimate every BatchNorm's running mean/variance as the plain average over ``x`` with the final
    weights. A few dozen training steps leave the running statistics (momentum 0.1) behind the weights,
    and the eval-mode model then predicts far worse than in training (measured on torchvision's
    mobilenet_v2: 12 % eval vs 31 % train-mode accuracy)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None   # cumulative average
    model.train()
    for i in range(0, len(x), batch):
        model(torch.from_numpy(x[i:i + batch]))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def trained_weights(entry, arrays, log=print) -> tuple[Path, dict]:
    """Path of the cached trained state_dict for ``entry`` (training it first when absent) and its
    training record (seconds, float test accuracy or error)."""
    from tinyprune.example.train import accuracy, train

    from . import factories
    key = cache_key(entry)
    d = cache_dir()
    path, meta_path = d / f"{entry.name}-{key}.pt", d / f"{entry.name}-{key}.json"
    if path.is_file() and meta_path.is_file():
        return path, json.loads(meta_path.read_text())
    d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = getattr(factories, entry.factory)()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # deterministic, and much faster than 2 threads on a shared 2-core machine
    n = entry.train_samples or len(arrays.x_train)
    x, y = arrays.x_train[:n], arrays.y_train[:n]
    target = None if arrays.target_train is None else arrays.target_train[:n]
    t0 = time.perf_counter()
    try:
        if arrays.target_train is None:
            train(model, x, y, epochs=entry.epochs, lr=entry.lr, seed=0)
        else:
            _fit(model, x, target, arrays.loss, entry.epochs, entry.lr)
        recalibrate_batchnorm(model, x)
    finally:
        torch.set_num_threads(threads)
    meta = {"seconds": round(time.perf_counter() - t0, 1), "epochs": entry.epochs, "samples": n, "key": key}
    if arrays.target_train is None:
        meta["float_test_accuracy"] = round(accuracy(model, arrays.x_test, arrays.y_test), 4)
    else:
        with torch.no_grad():
            out = model(torch.from_numpy(arrays.x_test))
        if arrays.loss == "mse":
            meta["test_mse"] = round(float(((out.numpy() - arrays.x_test) ** 2).mean()), 5)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"{entry.name}: trained {entry.epochs} epochs in {meta['seconds']} s {meta}")
    return path, meta

"""A small, deterministic classifier trainer (Adam + one-cycle schedule, +-1 pixel shifts for images).

Used by scripts/train_example.py to make the bundled checkpoint and by tests to train their
architectures. Imports torch and numpy only.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int = 0,
          lr: float = 0.01, batch: int = 32, shift_augment: bool = True) -> nn.Module:
    """Train in place on float32 ``x`` (PyTorch layout) and int labels ``y``; returns the model in eval mode.
    Seeded: the same inputs, seed and torch build give the same weights (use one thread)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb = xt[idx]
            if shift_augment and xb.ndim == 4:
                dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            loss_fn(model(xb), yt[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).argmax(1).numpy()
                  == np.asarray(y)).mean())

#!/usr/bin/env python
"""Train the bundled example (tinyprune/example) on digits and write its checkpoint.

Deterministic: fixed seeds, one thread, deterministic algorithms; the same torch build gives the
same checkpoint. Takes well under a minute on one core.

    .venv/bin/python scripts/train_example.py [--out tinyprune/example/example.pt] [--epochs 40]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyprune.data import load_dataset  # noqa: E402
from tinyprune.example import CHECKPOINT, INPUT_SHAPE, build_model  # noqa: E402


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int = 0,
          lr: float = 0.01, batch: int = 32) -> nn.Module:
    """Seeded Adam + cosine schedule; small random shifts of +-1 pixel as augmentation (images)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((len(x) + batch - 1) // batch))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            xb = xt[idx]
            if xb.ndim == 4:
                dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            loss_fn(model(xb), yt[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=CHECKPOINT)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data = load_dataset("digits", INPUT_SHAPE)
    torch.manual_seed(0)
    model = build_model()
    train(model, data.x_train, data.y_train, epochs=args.epochs)
    acc = accuracy(model, data.x_test, data.y_test)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(args.out)
    print(f"test accuracy {acc:.4f} on {len(data.y_test)} held-out digits; wrote {args.out} "
          f"({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

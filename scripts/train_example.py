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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyprune.data import load_dataset  # noqa: E402
from tinyprune.example import CHECKPOINT, INPUT_SHAPE, build_model  # noqa: E402
from tinyprune.example.train import accuracy, train  # noqa: E402


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

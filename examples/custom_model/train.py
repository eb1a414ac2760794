"""Make the worked example's inputs: train TinyDigits on scikit-learn's digits and write
``weights.pt`` (a state_dict) and ``digits8x8.npz`` (x: (N, 1, 8, 8) float32 in [0, 1], y: (N,),
plus x_test/y_test) next to this file. Deterministic; a few seconds on one core.

    python examples/custom_model/train.py [OUT_DIR]
"""
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).parent))
from model import make_model  # noqa: E402


def main(out_dir: Path) -> float:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(x))
    tr, te = idx[:1400], idx[1400:]
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[tr]), torch.from_numpy(y[tr])
    for _ in range(15):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x[te])).argmax(1).numpy() == y[te]).mean())
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / "weights.pt")
    np.savez(out_dir / "digits8x8.npz", x=x[tr], y=y[tr], x_test=x[te], y_test=y[te])
    return acc


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    print(f"test accuracy {100 * main(out):.2f}% -> {out}/weights.pt, {out}/digits8x8.npz")

"""Pruning evaluation (issue 5): on the digits data (8x8), two architectures (a plain CNN and a
residual network with a depthwise-separable branch and a concatenation), prune to 2x, 4x and 8x fewer
MACs with every criterion under the same fine-tuning budget, and report accuracy, MACs, params,
estimated int8 RAM and flash, and accuracy under FGSM (small eps) next to the unpruned model's.

    .venv/bin/python benchmarks/prune_eval.py                      # full table, writes docs/pruning.md
    .venv/bin/python benchmarks/prune_eval.py --criteria l1,snip --reductions 2 --no-write

Every run starts from the same trained base model (seeded) and prunes it (``when="trained"``) then
fine-tunes ``--epochs`` epochs with the built-in trainer; one core, seeded, deterministic.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyprune.prune import Budget, PruneConfig, figures, prune  # noqa: E402
from tinyprune.prune import criteria  # noqa: E402
from tinyprune.prune.train import Trainer, accuracy, as_data, fgsm_accuracy  # noqa: E402
from tinyprune.prune.zoo import plain_cnn, res_dw_net  # noqa: E402

ARCHS = {"plain-cnn": plain_cnn, "res-dw-concat": res_dw_net}
BEGIN, END = "<!-- prune_eval:begin -->", "<!-- prune_eval:end -->"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--criteria", default=",".join(criteria.names()))
    ap.add_argument("--reductions", default="2,4,8")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--base-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per run (same for every criterion)")
    ap.add_argument("--when", default="trained", choices=["trained", "init", "gradual"],
                    help="init: prune the untrained base (same seed) and train --epochs from there")
    ap.add_argument("--eps", type=float, default=0.05, help="FGSM step (inputs are in [0, 1])")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", dest="write", action="store_true", default=True)
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "pruning.md"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    x = torch.zeros(1, 1, 8, 8)
    data = as_data("digits", tuple(x.shape))
    rows = []
    t0 = time.time()
    for arch in a.archs.split(","):
        torch.manual_seed(a.seed)
        base = ARCHS[arch](a.width)
        untrained = ARCHS[arch](a.width)
        untrained.load_state_dict(base.state_dict())
        Trainer(data, seed=a.seed)(base, a.base_epochs)
        base.eval()
        start = untrained.eval() if a.when == "init" else base
        f0 = figures(base, x)
        acc0 = accuracy(base, data.x_test, data.y_test)
        adv0 = fgsm_accuracy(base, data.x_test, data.y_test, a.eps)
        rows.append((arch, "unpruned", 1, acc0, adv0, f0.macs, f0.params, f0.ram_bytes, f0.flash_bytes, "", ""))
        print(_fmt(rows[-1]), flush=True)
        for r in (int(v) for v in a.reductions.split(",")):
            for crit in a.criteria.split(","):
                t = time.time()
                try:
                    res = prune(start, x, Budget(max_macs=f0.macs // r), criterion=crit, data=data,
                                when=a.when, config=PruneConfig(epochs=a.epochs, seed=a.seed))
                except Exception as e:  # noqa: BLE001 - a benchmark reports failures as rows
                    rows.append((arch, crit, r, None, None, None, None, None, None, "", f"failed: {e}"))
                    print(_fmt(rows[-1]), flush=True)
                    continue
                m = res.model
                f = figures(m, x)
                widths = [l["out_after"] for l in res.report["layers"] if l["name"] != res.report["layers"][-1]["name"]]
                rows.append((arch, crit, r, accuracy(m, data.x_test, data.y_test),
                             fgsm_accuracy(m, data.x_test, data.y_test, a.eps), f.macs, f.params, f.ram_bytes,
                             f.flash_bytes, min(widths), ",".join(res.report["search"]["layers_at_minimum"]) or "-"))
                print(_fmt(rows[-1]), f"({time.time() - t:.1f}s)", flush=True)
    took = time.time() - t0
    table = _table(rows, a, took)
    print(table)
    if a.write:
        _write(Path(a.doc), table)
    return 0


def _fmt(row):
    return " | ".join("" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in row)


def _table(rows, a, took) -> str:
    cmd = ("`.venv/bin/python benchmarks/prune_eval.py"
           + (f" --archs {a.archs}" if a.archs != ",".join(ARCHS) else "")
           + (f" --criteria {a.criteria}" if a.criteria != ",".join(criteria.names()) else "")
           + (f" --reductions {a.reductions}" if a.reductions != "2,4,8" else "")
           + (f" --epochs {a.epochs}" if a.epochs != 3 else "")
           + (f" --when {a.when}" if a.when != "trained" else "") + "`")
    lines = [f"Command: {cmd} (width {a.width}, base model trained {a.base_epochs} epochs, "
             f"{a.epochs} (fine-)tuning epochs per run, when={a.when}, FGSM eps {a.eps}, seed {a.seed}; "
             f"{took / 60:.1f} min on 1 core). Test set: held-out digits (8x8).",
             "",
             "| arch | criterion | MAC reduction | accuracy | FGSM accuracy | MACs | params | est. RAM (B) | "
             "est. flash (B) | narrowest layer | layers at 1 channel |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arch, crit, r, acc, adv, macs, params, ram, flash, narrow, hits in rows:
        def p(v):
            return "—" if v is None else f"{100 * v:.1f}%"
        lines.append(f"| {arch} | {crit} | {r}x | {p(acc)} | {p(adv)} | {macs if macs is not None else '—'} | "
                     f"{params if params is not None else '—'} | {ram if ram is not None else '—'} | "
                     f"{flash if flash is not None else '—'} | {narrow} | {hits} |")
    return "\n".join(lines)


def _write(doc: Path, table: str):
    text = doc.read_text() if doc.exists() else f"# Pruning\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
    doc.write_text(text)
    print(f"wrote the table into {doc}")


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run every model of the corpus (benchmarks/corpus/) through `tinyprune build --board nucleo-f746`
and write benchmarks/CORPUS.md (the table, generated: never edit it by hand) and
benchmarks/corpus.json (every record).

    .venv/bin/python benchmarks/run_corpus.py [--only a,b] [--samples 100] [--sim-samples 20]
        [--timeout 1800] [--workdir build/corpus] [--json-out J] [--merge J2 ...]

Each model is prepared (PyTorch models: trained briefly, weights cached in $TINYPRUNE_CORPUS_CACHE or
~/.cache/tinyprune/corpus; a labelled .npz written) and built in its own folder with a timeout, as a
subprocess. `--only` re-runs some models and keeps the others' records from corpus.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.corpus import ENTRIES, Unavailable, prepare  # noqa: E402
from benchmarks.corpus_table import render  # noqa: E402

BOARD = "nucleo-f746"


def _git_head() -> str | None:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or None


def record_of(entry, summary: dict | None, rc: int | None, stderr: str, seconds: float) -> dict:
    """The figures CORPUS.md shows, from a build's summary.json (None: the build printed none)."""
    rec = {"name": entry.name, "source": entry.source, "description": entry.description,
           "input_shape": list(entry.input_shape), "exit_code": rc, "wall_seconds": round(seconds, 1)}
    if summary is None:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        rec.update(status="crashed" if rc is not None else "timeout", failed_stage=None,
                   message=f"no summary (exit {rc}); stderr tail:\n{tail}")
        return rec
    order = summary.get("stage_order") or list(summary.get("stage_status", {}))
    status = summary.get("stage_status", {})
    failed = [s for s in order if status.get(s) == "failed"]
    pr, cg, cv = summary.get("pruning") or {}, summary.get("codegen") or {}, summary.get("conversion") or {}
    before, after = pr.get("estimate_before") or {}, pr.get("estimate_after") or {}
    val = summary.get("validation") or {}
    rec.update(
        status=summary.get("status"), message=summary.get("message"), failed_stage=failed[0] if failed else None,
        stages={s: status.get(s) for s in order}, timings=summary.get("timings"),
        pruned=bool(pr.get("applied")), prune_reason=pr.get("reason"),
        before={"macs": before.get("macs", pr.get("macs_before")), "ram": before.get("ram_bytes"),
                "flash": before.get("flash_bytes"), "params": pr.get("params_before")},
        after={"macs": cg.get("macs"), "ram": cg.get("arena_bytes"), "flash": cg.get("flash_bytes"),
               "params": pr.get("params_after")},
        firmware={k: (summary.get("firmware") or {}).get(k) for k in ("flash_used", "ram_used")},
        accuracy_measured=(summary.get("accuracy") or {}).get("measured"),
        float_accuracy=cv.get("float_accuracy"), int8_accuracy=cv.get("int8_accuracy"), agreement=cv.get("agreement"),
        host=_val(val.get("host")), sim=_val(val.get("sim")))
    return rec


def _val(v: dict | None) -> dict | None:
    if not v:
        return None
    return {k: v.get(k) for k in ("samples", "bit_exact", "mismatched_samples", "passed", "accuracy",
                                  "counter_per_inference", "counter_unit")}


def run_one(entry, workdir: Path, args) -> dict:
    wd = workdir / entry.name
    t0 = time.perf_counter()
    try:
        build_args = prepare(entry, wd, log=lambda m: print(m, file=sys.stderr))
    except Unavailable as e:
        return {"name": entry.name, "source": entry.source, "description": entry.description,
                "input_shape": list(entry.input_shape), "status": "skipped", "message": str(e)}
    prep = time.perf_counter() - t0
    cmd = [sys.executable, "-m", "tinyprune.cli", "build", *build_args, "--board", BOARD, "--json",
           "-o", str(wd / "build"), "--samples", str(args.samples), "--sim-samples", str(args.sim_samples)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    t1 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=wd)
        rc, out, err = r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = None, "", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    (wd / "build.log").write_text(err)
    try:
        summary = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        summary = None
    rec = record_of(entry, summary, rc, err, time.perf_counter() - t1)
    if rc is None:
        rec.update(status="timeout", message=f"no result within --timeout {args.timeout} s")
    rec["prepare_seconds"] = round(prep, 1)
    rec["command"] = "tinyprune build " + " ".join(str(c) for c in cmd[4:])
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated model names (default: all)")
    ap.add_argument("--samples", type=int, default=100, help="host validation samples per model")
    ap.add_argument("--sim-samples", type=int, default=20, help="QEMU validation samples per model")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per build")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "corpus"))
    ap.add_argument("--json-out", default=str(ROOT / "benchmarks" / "corpus.json"))
    ap.add_argument("-o", "--out", default=str(ROOT / "benchmarks" / "CORPUS.md"))
    ap.add_argument("--merge", nargs="*", default=[], metavar="JSON",
                    help="take the records of other runs' corpus.json files (e.g. run in parallel with --json-out), "
                         "then run --only's models (none: just re-render)")
    args = ap.parse_args(argv)

    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - {e.name for e in ENTRIES}
    if unknown:
        print(f"unknown corpus model(s): {', '.join(sorted(unknown))}; known: {', '.join(e.name for e in ENTRIES)}",
              file=sys.stderr)
        return 2
    json_path = Path(args.json_out)
    records = {r["name"]: r for r in json.loads(json_path.read_text())["models"]} if json_path.is_file() else {}
    for other in args.merge:
        records.update({r["name"]: r for r in json.loads(Path(other).read_text())["models"] if r["status"] != "not run"})
    workdir = Path(args.workdir)
    _write(records, json_path, Path(args.out))
    for entry in ENTRIES:
        if (names and entry.name not in names) or (args.merge and not names):
            continue
        print(f"== {entry.name}", file=sys.stderr, flush=True)
        rec = run_one(entry, workdir, args)
        rec.update(commit=_git_head(), date=time.strftime("%Y-%m-%d"), samples=args.samples,
                   sim_samples=args.sim_samples)
        records[entry.name] = rec
        print(f"   {rec['status']}" + (f" at {rec.get('failed_stage')}: {rec['message']}" if rec.get("message") else ""),
              file=sys.stderr, flush=True)
        _write(records, json_path, Path(args.out))
    return 0


def _write(records: dict, json_path: Path, md_path: Path) -> None:
    ordered = [records.get(e.name) or {"name": e.name, "source": e.source, "description": e.description,
                                       "input_shape": list(e.input_shape), "status": "not run",
                                       "message": "no record yet: run benchmarks/run_corpus.py --only " + e.name}
               for e in ENTRIES]
    json_path.write_text(json.dumps({"board": BOARD, "models": ordered}, indent=1, sort_keys=True) + "\n")
    md_path.write_text(render(ordered, BOARD))


if __name__ == "__main__":
    sys.exit(main())

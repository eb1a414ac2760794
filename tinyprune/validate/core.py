"""``validate(build_dir, target, ...)``: run a build's firmware (natively, in QEMU or on a board),
compare every output bit for bit with TFLite Micro, measure accuracy, output metrics and
counters, compare with a baseline report, and write validate.json (+ JUnit XML).

BUILD_DIR layout (docs/validate.md): ``model_int8.tflite``; ``codegen/`` (model.h ...);
``firmware/firmware.elf`` for --sim/--port (``firmware-sim/firmware.elf`` is preferred for --sim
when the board itself has no QEMU machine); the board's name in ``board.txt`` or in
``firmware/firmware.json``; optionally the float ``model.onnx`` and ``convert.json``. Each file is
also looked for one folder down (e.g. ``convert/model_int8.tflite``).

May import tinyprune.errors, _fs, _paths, boards, data and tinyprune.validate.*.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune._fs import atomic_write_text, check_output_file, sha256_file
from tinyprune.errors import TinypruneError, ToolError, UserInputError, ValidationFailed
from tinyprune.validate import protocol as P
from tinyprune.validate.reference import (Reference, confusion_matrix, float_model_outputs, output_metrics,
                                          prepare_inputs)
from tinyprune.validate.results import SampleResult, ValidationReport, junit_xml, report_json

TARGETS = ("host", "sim", "port")
DEFAULT_MAX_ACCURACY_DROP = 1.0  # percentage points
DEFAULT_SAMPLES = 20
DEFAULT_ICOUNT_SHIFT = 7  # firmware/bsp/bsp_mps2.c, bsp_mps3.c: TP_ICOUNT_SHIFT default


# ------------------------------------------------------------------------------------- layout

@dataclass
class BuildLayout:
    root: Path
    tflite: Path
    codegen: Path | None
    firmware_elf: Path | None
    sim_elf: Path | None
    board: str | None
    onnx: Path | None
    convert_json: Path | None

    @property
    def expected_hash(self) -> str:
        """The model hash the firmware must report: MODEL_HASH of the generated model.h, else
        the SHA-256 of model_int8.tflite."""
        if self.codegen is not None:
            m = re.search(r'#define\s+MODEL_HASH\s+"([0-9a-fA-F]{64})"', (self.codegen / "model.h").read_text())
            if m:
                return m.group(1).lower()
        return sha256_file(self.tflite)


def _find(root: Path, rel: str) -> Path | None:
    p = root / rel
    if p.exists():
        return p
    hits = sorted(c for c in root.glob(f"*/{rel}") if c.exists())
    return hits[0] if hits else None


def resolve_build(build_dir: str | os.PathLike) -> BuildLayout:
    root = Path(build_dir)
    if not root.is_dir():
        raise UserInputError(f"build directory not found: {root}",
                             hint="pass the output folder of `tinyprune build` (or one with model_int8.tflite "
                                  "and codegen/)")
    tfl = _find(root, "model_int8.tflite")
    if tfl is None:
        raise UserInputError(f"{root} has no model_int8.tflite (the reference model validation compares against)",
                             hint="pass the output folder of `tinyprune build`, see docs/validate.md for the layout")
    codegen = None
    for cand in (root / "codegen", root):
        if (cand / "model.h").is_file():
            codegen = cand
            break
    if codegen is None:
        hit = _find(root, "model.h")
        codegen = hit.parent if hit else None
    elf = _find(root, "firmware/firmware.elf") or _find(root, "firmware.elf")
    sim_elf = _find(root, "firmware-sim/firmware.elf")
    board = None
    bt = _find(root, "board.txt")
    if bt is not None:
        board = bt.read_text().strip() or None
    if board is None:
        for rel in ("firmware/firmware.json", "firmware.json", "build.json"):
            fj = _find(root, rel)
            if fj is not None:
                try:
                    board = json.loads(fj.read_text()).get("board")
                    if isinstance(board, dict):
                        board = board.get("name")
                except (ValueError, AttributeError):
                    board = None
                if board:
                    break
    return BuildLayout(root, tfl, codegen, elf, sim_elf, board, _find(root, "model.onnx"),
                       _find(root, "convert.json"))


# ------------------------------------------------------------------------------------- report

def write_junit(report: ValidationReport, path: str | os.PathLike) -> None:
    atomic_write_text(Path(path), junit_xml(report))


# ------------------------------------------------------------------------------------- targets

def _layer_names(layout: BuildLayout, n: int) -> list[str]:
    names: list[str] = []
    if layout.codegen is not None:
        src = layout.codegen / "model.c"
        if src.is_file():
            m = re.search(r"model_layer_names\s*\[\s*\w*\s*\]\s*=\s*\{(.*?)\};", src.read_text(), re.S)
            if m:
                names = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    return names[:n] + [f"layer{i}" for i in range(len(names), n)]


def open_target(layout: BuildLayout, target: str, *, port: str | None = None, baud: int = 115200,
                board: str | None = None, link_kw: dict | None = None, proxy=None):
    """A context manager yielding a connected Link for the target. ``proxy`` (tests) is a
    callable mapping (host, port) of the device to the (host, port) the link should use."""
    link_kw = dict(link_kw or {})
    link_kw.setdefault("expected_hash", layout.expected_hash)
    if target == "host":
        from tinyprune.validate.host import build_host, host_build_id, host_session

        if layout.codegen is None:
            raise UserInputError(f"{layout.root} has no codegen/ folder (model.h) to build natively",
                                 hint="run `tinyprune codegen` or `tinyprune build` first")
        exe = build_host(layout.codegen, layout.root / "host")
        link_kw.setdefault("expected_build", host_build_id(exe))
        link_kw.setdefault("build_label", "the host build")
        return host_session(exe, proxy=proxy, **link_kw)
    if target == "sim":
        from tinyprune.validate.qemu import qemu_session, require_qemu

        # QEMU is looked for before firmware-sim/ is built into the build folder; a firmware that is already
        # there is checked first (qemu_session: a garbage ELF is bad input, whatever the machine has)
        elf, machine, cpu = sim_firmware(layout, board, before_build=require_qemu)
        _expect_firmware(link_kw, elf)
        return qemu_session(elf, machine, cpu, proxy=proxy, icount_shift=icount_shift(elf), **link_kw)
    if target == "port":
        import contextlib

        from tinyprune.validate.link import Link

        if not port:
            raise UserInputError("--port needs a serial port (e.g. /dev/ttyACM0)")
        if layout.firmware_elf is not None:
            _expect_firmware(link_kw, layout.firmware_elf)

        @contextlib.contextmanager
        def _serial():
            link = Link.open_url(port, baud, **link_kw)
            try:
                yield link
            finally:
                link.close()
        return _serial()
    raise UserInputError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")


def _expect_firmware(link_kw: dict, elf: Path) -> None:
    """The device must report the build id recorded in firmware.json next to ``elf``."""
    fj = Path(elf).with_name("firmware.json")
    try:
        meta = json.loads(fj.read_text()) if fj.is_file() else {}
    except ValueError:
        meta = {}
    if isinstance(meta, dict) and meta.get("build_id"):
        link_kw.setdefault("expected_build", str(meta["build_id"]))
        link_kw.setdefault("build_label", f"{meta.get('board', '?')} firmware in {fj.parent}")


def sim_firmware(layout: BuildLayout, board: str | None = None, before_build=None) -> tuple[Path, str, str]:
    """(elf, machine, cpu) to run in QEMU for this build; ``before_build()`` runs before firmware for the
    board's QEMU twin is built into the build folder (when it has none yet)."""
    from tinyprune.boards import load_board

    name = board or layout.board
    if not name:
        raise UserInputError(f"cannot tell which board {layout.root} was built for",
                             hint="write the board name into BUILD_DIR/board.txt or pass --board")
    b = load_board(name)
    qname = b.qemu_board
    if not qname:
        raise UserInputError(f"board {b.name} has no QEMU simulation twin", hint="validate it with --port or --host")
    q = load_board(qname)
    elf = layout.sim_elf if (not b.simulation and layout.sim_elf) else layout.firmware_elf
    if not b.simulation and layout.sim_elf is None:
        if before_build is not None:
            before_build()
        elf = _build_sim_firmware(layout, q.name)
    if elf is None:
        raise UserInputError(f"{layout.root} has no firmware/firmware.elf to run in QEMU",
                             hint=f"build it: tinyprune firmware {layout.root} --board {b.name}")
    return elf, q.qemu.machine, q.qemu.cpu


def icount_shift(elf: Path) -> int:
    """The -icount shift the firmware's BSP was built for: -DTP_ICOUNT_SHIFT=N in the cflags
    recorded in firmware.json next to the ELF, else the BSPs' default (7)."""
    fj = Path(elf).with_name("firmware.json")
    if fj.is_file():
        try:
            for flag in json.loads(fj.read_text()).get("cflags", []):
                m = re.fullmatch(r"-DTP_ICOUNT_SHIFT=(\d+)u?", str(flag))
                if m:
                    return int(m.group(1))
        except (ValueError, AttributeError):
            pass
    return DEFAULT_ICOUNT_SHIFT


def _build_sim_firmware(layout: BuildLayout, sim_board: str) -> Path:
    try:
        from tinyprune.firmware import build_firmware
    except ImportError:
        raise ToolError("this build's board has no QEMU machine and the firmware stage is not available to "
                        f"build firmware for its simulation twin {sim_board}") from None
    if layout.codegen is None:
        raise UserInputError(f"{layout.root} has no codegen/ folder to build {sim_board} firmware from")
    res = build_firmware(layout.codegen, sim_board, layout.root / "firmware-sim")
    return Path(res.elf)


# ------------------------------------------------------------------------------------- validate

def _load_data(ref: Reference, layout: BuildLayout, data, random, samples, seed):
    """-> (x_int8 (N, ...), labels or None, float x or None, description)."""
    if data is not None and random is not None:
        raise UserInputError("give either data or random samples, not both")
    if data is None:
        n = int(random if random is not None else (samples or DEFAULT_SAMPLES))
        if samples is not None:
            n = min(n, int(samples))
        if n < 1:
            raise UserInputError(f"need at least one sample (got {n})")
        rng = np.random.default_rng(seed)
        x = rng.integers(-128, 128, size=(n,) + tuple(ref.input.shape[1:]), dtype=np.int64).astype(np.int8)
        return x, None, None, {"source": "random", "seed": seed, "samples": n}
    from tinyprune.data import load_dataset

    shape = ref.pytorch_shape()
    if layout.convert_json is not None:
        try:
            shape = tuple(json.loads(layout.convert_json.read_text())["input"]["pytorch_shape"])
        except (ValueError, KeyError, TypeError):
            pass
    ds = load_dataset(data, shape)
    x_f, y = ds.x_test, ds.y_test
    if samples is not None:
        x_f, y = x_f[:int(samples)], y[:int(samples)]
    source = ds.name if not isinstance(data, (str, os.PathLike)) else str(data)   # in-memory: its name
    desc = {"source": source, "split": "test", "samples": int(len(x_f)), "classes": int(ds.classes)}
    if not ds.labelled:     # x only (e.g. an autoencoder's data): bit-exactness, no accuracy
        y = None
        desc.update(classes=None, accuracy="not measured: the data has no labels (x only)")
    return prepare_inputs(ref, x_f), y, x_f, desc


def validate(build_dir: str | os.PathLike, target: str, *, port: str | None = None, baud: int = 115200,
             data=None, random: int | None = None, samples: int | None = None,
             baseline: str | os.PathLike | None = None, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
             junit: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
             layers: bool = True, seed: int = 0, board: str | None = None, link_kw: dict | None = None,
             proxy=None, report_build_dir: str | None = None) -> ValidationReport:
    """Validate a build on ``target`` ("host", "sim" or "port"). Returns the report (also written
    to ``out``, default BUILD_DIR/validate.json, and to ``junit`` when given); ``report.passed`` is
    False on any bit mismatch, self-test mismatch or accuracy drop beyond ``max_accuracy_drop``
    percentage points below ``baseline`` (a previous validate.json). A device running another model
    or firmware build raises ValidationFailed at once, a lost link ToolError; either way a failed
    report (``passed: false`` with the error) is written first, so no earlier report survives.
    ``report_build_dir``: the build folder the report names (default ``build_dir``; `tinyprune build`
    validates in a work folder that becomes OUT/BOARD on success). Unwritable ``out``/``junit`` fail
    first. Before the run only the native build (``host/``) or the twin's firmware (``firmware-sim/``,
    when missing) may be built, each atomically."""
    t0 = time.monotonic()
    if target not in TARGETS:
        raise UserInputError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    layout = resolve_build(build_dir)
    out_path = Path(out) if out is not None else layout.root / "validate.json"
    for p in (out_path, junit):
        if p is not None:
            check_output_file(p)
    ref = Reference(layout.tflite)
    x, y, x_float, data_desc = _load_data(ref, layout, data, random, samples, seed)
    if y is not None and int(np.prod(ref.output.shape)) != max(ref.output.shape):
        # a dense output (e.g. per-pixel classes): one label per sample cannot score it
        y = None
        data_desc = dict(data_desc, accuracy="not measured: the model's output is not one class vector per sample")
    base = _read_baseline(baseline) if baseline is not None else None

    report = ValidationReport(target, report_build_dir or str(layout.root), {}, data=data_desc)
    session: dict = {}
    try:
        with open_target(layout, target, port=port, baud=baud, board=board, link_kw=link_kw, proxy=proxy) as link:
            session["link"] = link
            outs_dev, outs_ref, st = _run_samples(link, report, ref, x, y, layers)
            report.identity = _identity(link)
            report.link = link.stats.to_dict()
    except TinypruneError as e:  # wrong firmware, lost link...: the run's report says so
        link = session.get("link")
        report.error = {"exit_code": e.exit_code, "message": e.message}
        report.failures.append(e.message)
        report.identity = _identity(link, e) if link is not None else {"ok": None}
        report.link = link.stats.to_dict() if link is not None else {}
        report.seconds = time.monotonic() - t0
        _write_reports(report, out_path, junit)
        raise
    info = link.device_info or link.reported_info

    dev_all, ref_all = np.stack(outs_dev), np.stack(outs_ref)
    mismatched = [s.index for s in report.samples if not s.bit_exact]
    if mismatched:
        first = report.samples[mismatched[0]].mismatch
        report.failures.append(f"{len(mismatched)} of {len(report.samples)} samples differ from TFLite Micro "
                               f"(first: sample {first['sample']}, positions {first['positions']}: device "
                               f"{first['device']} vs reference {first['reference']})")
    dev_f = ref.dequantize(dev_all)
    versus = "tflite_micro_dequantized"
    want_f = ref.dequantize(ref_all)
    if x_float is not None and layout.onnx is not None:
        try:
            fo = float_model_outputs(layout.onnx, x_float)
            if fo is not None and fo.size == want_f.size:
                want_f, versus = fo.reshape(want_f.shape), "float_model"
        except Exception:  # noqa: BLE001 - float metrics are a bonus, never a failure
            pass
    report.metrics = {"versus": versus, **output_metrics(dev_f, want_f)}
    if versus == "float_model":
        report.metrics["reference_vs_float"] = output_metrics(ref.dequantize(ref_all), want_f)

    counts = [s.counter for s in report.samples]
    report.counters = {"unit": info.counter_unit, "per_inference": counts, "min": int(min(counts)),
                       "median": int(np.median(counts)), "max": int(max(counts)), "mean": float(np.mean(counts)),
                       "identical": len(set(counts)) == 1, "selftest": st["counter"]}
    if layers and report.samples and report.samples[0].layer_counts:
        lc = np.array([s.layer_counts for s in report.samples], dtype=np.int64)
        names = _layer_names(layout, lc.shape[1])
        report.layers = [{"index": j, "name": names[j], "mean": float(lc[:, j].mean()), "min": int(lc[:, j].min()),
                          "max": int(lc[:, j].max())} for j in range(lc.shape[1])]
    if y is not None:
        preds = np.array([s.pred for s in report.samples])
        report.accuracy = float((preds == y).mean())
        report.reference_accuracy = float((np.array([s.ref_pred for s in report.samples]) == y).mean())
        classes = max(int(ref.output.nbytes), int(y.max()) + 1)
        report.confusion = confusion_matrix(y, preds, classes)
    if base is not None:
        report.baseline = _compare_baseline(report, base, max_accuracy_drop)
        if not report.baseline["ok"]:
            report.failures.append(f"accuracy {100 * report.accuracy:.2f}% is {report.baseline['drop_pct']:.2f} "
                                   f"percentage points below the baseline {100 * base['accuracy']:.2f}% "
                                   f"(allowed: {max_accuracy_drop:g})")
    report.seconds = time.monotonic() - t0
    _write_reports(report, out_path, junit)
    return report


def _run_samples(link, report: ValidationReport, ref: Reference, x, y, layers: bool):
    """Self-test and every sample on the connected device -> (device outputs, reference outputs,
    self-test result); fills report.device, .selftest and .samples as it goes."""
    info = link.info()
    report.device = info.to_dict()
    if info.input_bytes != ref.input.nbytes or info.output_bytes != ref.output.nbytes:
        raise ValidationFailed(f"the device's model takes {info.input_bytes} bytes and returns "
                               f"{info.output_bytes}, the build's model {ref.input.nbytes} and "
                               f"{ref.output.nbytes}", hint="flash this build's firmware")
    st = link.selftest()
    st_ref = P.crc32(ref.run(np.frombuffer(st["input"], dtype=np.int8)).tobytes())
    report.selftest = {"ok": st["input_ok"] and st["status"] == 0 and st["output_crc"] == st_ref,
                       "device_crc": st["output_crc"], "reference_crc": st_ref, "counter": st["counter"]}
    if not report.selftest["ok"]:
        report.failures.append("self-test output differs from TFLite Micro")
    outs_dev, outs_ref = [], []
    for i in range(len(x)):
        r = link.run(x[i], layers=layers)
        dev = np.frombuffer(r.output, dtype=np.int8).reshape(ref.output.shape)
        want = ref.run(x[i])
        s = SampleResult(i, bool(np.array_equal(dev, want)), r.counter, layer_counts=r.layer_counts)
        if not s.bit_exact:
            diff = np.flatnonzero(dev.ravel() != want.ravel())
            s.mismatch = {"sample": i, "count": int(len(diff)), "size": int(dev.size),
                          "positions": diff[:8].tolist(), "device": dev.ravel()[diff[:8]].tolist(),
                          "reference": want.ravel()[diff[:8]].tolist()}
        if y is not None:
            s.label, s.pred, s.ref_pred = int(y[i]), int(dev.ravel().argmax()), int(want.ravel().argmax())
        report.samples.append(s)
        outs_dev.append(dev)
        outs_ref.append(want)
    return outs_dev, outs_ref, st


def _identity(link, error: TinypruneError | None = None) -> dict:
    """The device's model hash and build id against the build's; ok None: never reported."""
    got = link.reported_info
    d = {"expected_model_hash": link.expected_hash, "expected_build_id": link.expected_build}
    if got is None:
        return {**d, "ok": None}
    ok = (not link.expected_hash or got.model_hash == link.expected_hash) and \
        (not link.expected_build or got.build_id == link.expected_build)
    d.update(model_hash=got.model_hash, build_id=got.build_id, board=got.board, ok=ok)
    if not ok and error is not None:
        d["message"] = error.message
    return d


def _write_reports(report: ValidationReport, out_path: Path, junit) -> None:
    atomic_write_text(out_path, report_json(report))
    if junit is not None:
        write_junit(report, junit)


def _read_baseline(path) -> dict:
    p = Path(path)
    try:
        b = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserInputError(f"baseline report not found: {p}") from None
    except ValueError as e:
        raise UserInputError(f"baseline {p} is not JSON ({e})") from None
    if not isinstance(b, dict) or not isinstance(b.get("accuracy"), (int, float)):
        raise UserInputError(f"baseline {p} has no accuracy",
                             hint="use a validate.json written by `tinyprune validate --data ...` (with labels)")
    return {"path": str(p), "accuracy": float(b["accuracy"]), "data": b.get("data") or {}}


def _compare_baseline(report: ValidationReport, base: dict, max_drop: float) -> dict:
    if report.accuracy is None:
        raise UserInputError("--baseline needs labelled data (--data D.npz or digits), not random inputs")
    bd, rd = base["data"], report.data
    if bd and (bd.get("source") != rd.get("source") or bd.get("samples") != rd.get("samples")):
        raise UserInputError(f"the baseline was measured on {bd.get('samples')} samples of {bd.get('source')}, this "
                             f"run uses {rd.get('samples')} samples of {rd.get('source')}: accuracies are not "
                             "comparable", hint="validate with the same --data and --samples as the baseline")
    drop = 100.0 * (base["accuracy"] - report.accuracy)
    return {"path": base["path"], "accuracy": base["accuracy"], "drop_pct": drop, "max_drop_pct": float(max_drop),
            "ok": drop <= max_drop + 1e-9}


def check(report: ValidationReport) -> None:
    """Raise ValidationFailed (exit 4) when the report failed."""
    if not report.passed:
        raise ValidationFailed("validation failed: " + "; ".join(report.failures))


__all__ = ["validate", "ValidationReport", "resolve_build", "open_target", "check", "TinypruneError"]

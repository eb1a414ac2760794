"""What a validation run found, and its two renderings: validate.json (``report_json``) and JUnit
XML (``junit_xml``). A run that stops early (wrong firmware, lost link) still has a report: it
says ``passed: false``, carries the error and the samples done so far, so a previous run's files
never survive a failed run (core.validate writes them; this module only renders text).

May import tinyprune (``__version__``) only, plus numpy.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from tinyprune import __version__

MAX_MISMATCH_REPORT = 8


@dataclass
class SampleResult:
    index: int
    bit_exact: bool
    counter: int
    label: int | None = None
    pred: int | None = None
    ref_pred: int | None = None
    mismatch: dict | None = None
    layer_counts: list[int] | None = None


@dataclass
class ValidationReport:
    target: str
    build_dir: str
    device: dict
    samples: list[SampleResult] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    accuracy: float | None = None
    reference_accuracy: float | None = None
    confusion: list[list[int]] | None = None
    metrics: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    layers: list[dict] = field(default_factory=list)
    selftest: dict = field(default_factory=dict)
    baseline: dict | None = None
    link: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # model hash and firmware build id: what the device reported against what the build has;
    # "ok" is None when the device never said who it is
    identity: dict = field(default_factory=dict)
    error: dict | None = None   # the error that stopped the run: {"exit_code", "message"}

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None

    @property
    def bit_exact(self) -> bool:
        return bool(self.samples) and all(s.bit_exact for s in self.samples)

    def to_dict(self) -> dict:
        return {
            "tinyprune_version": __version__, "target": self.target, "build_dir": self.build_dir,
            "device": self.device, "passed": self.passed, "failures": self.failures, "error": self.error,
            "identity": self.identity, "bit_exact": self.bit_exact, "samples": len(self.samples),
            "mismatched_samples": [s.index for s in self.samples if not s.bit_exact],
            "mismatches": [s.mismatch for s in self.samples if s.mismatch][:MAX_MISMATCH_REPORT],
            "data": self.data, "accuracy": self.accuracy, "reference_accuracy": self.reference_accuracy,
            "confusion_matrix": self.confusion, "metrics": self.metrics, "counters": self.counters,
            "layers": self.layers, "selftest": self.selftest, "baseline": self.baseline, "link": self.link,
            "per_sample": [{"index": s.index, "bit_exact": s.bit_exact, "counter": s.counter, "label": s.label,
                            "pred": s.pred} for s in self.samples],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        n = len(self.samples)
        exact = sum(s.bit_exact for s in self.samples)
        parts = [f"{self.target}: {exact}/{n} samples bit-exact"]
        if self.accuracy is not None:
            parts.append(f"accuracy {100 * self.accuracy:.2f}%")
        c = self.counters
        if c.get("median") is not None:
            parts.append(f"{c['median']} {c.get('unit', '')} per inference")
        if self.baseline:
            parts.append(f"baseline {100 * self.baseline['accuracy']:.2f}% (drop {self.baseline['drop_pct']:.2f} pt)")
        line = ", ".join(parts)
        return line + ("" if self.passed else "\nFAILED: " + "; ".join(self.failures))


def report_json(report: ValidationReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, default=_jd) + "\n"


def _identity_case(report: ValidationReport) -> tuple[str | None, str | None]:
    """(failure, error) of the model_hash test case."""
    ident = report.identity
    if ident.get("ok") is True:
        return None, None
    if ident.get("ok") is False:
        return ident.get("message") or "the device runs other firmware than the build", None
    why = report.error["message"] if report.error else "the device never reported its identity"
    return None, f"identity not checked: {why}"


def junit_xml(report: ValidationReport) -> str:
    cases: list[tuple[str, str | None, str | None]] = []   # (name, failure, error)
    cases.append(("model_hash", *_identity_case(report)))
    if report.selftest:
        cases.append(("selftest", None if report.selftest.get("ok") else
                      f"self-test output CRC {report.selftest.get('device_crc')} != reference "
                      f"{report.selftest.get('reference_crc')}", None))
    for s in report.samples:
        msg = None
        if not s.bit_exact:
            m = s.mismatch or {}
            msg = (f"sample {s.index}: {m.get('count')} of {m.get('size')} output values differ; first at "
                   f"{m.get('positions')}: device {m.get('device')} vs reference {m.get('reference')}")
        cases.append((f"sample[{s.index}]", msg, None))
    if report.baseline is not None:
        b = report.baseline
        cases.append(("accuracy_vs_baseline", None if b["ok"] else
                      f"accuracy {100 * report.accuracy:.2f}% is {b['drop_pct']:.2f} pt below the baseline "
                      f"{100 * b['accuracy']:.2f}% (allowed {b['max_drop_pct']:.2f} pt)", None))
    if report.error is not None and report.identity.get("ok") is not False:
        cases.append(("run", None, f"validation stopped (exit {report.error['exit_code']}): "
                                   f"{report.error['message']}"))
    suite = ET.Element("testsuite", name=f"tinyprune.validate.{report.target}", tests=str(len(cases)),
                       failures=str(sum(1 for _, f, _ in cases if f)), errors=str(sum(1 for *_, e in cases if e)),
                       time=f"{report.seconds:.3f}")
    for name, failure, error in cases:
        tc = ET.SubElement(suite, "testcase", classname=f"tinyprune.validate.{report.target}", name=name)
        for tag, msg in (("failure", failure), ("error", error)):
            if msg:
                ET.SubElement(tc, tag, message=msg.splitlines()[0][:500]).text = msg
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _jd(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    return str(o)

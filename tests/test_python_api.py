"""The Python API takes what notebook users hold (issue 11): ``tinyprune.build``, ``prune`` and ``convert`` take
an ``nn.Module``, ``weights`` as a state_dict object, and data as (x, y) arrays, a tinyprune Dataset or a torch
Dataset/DataLoader; in-memory models and data get stage-cache keys (or the run is not cached, saying why)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tinyprune
from tinyprune.data import as_dataset, fingerprint, load_digits
from tinyprune.errors import UserInputError, ValidationFailed

BOARD = "nucleo-f746"
needs_toolchain = [pytest.mark.arm, pytest.mark.hostcc,
                   pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cc") is None,
                                      reason="needs arm-none-eabi-gcc and a host C compiler (make setup)")]


@pytest.fixture(scope="module")
def digits():
    """digits at the example's 16x16, as plain (x, y) arrays (train and test split joined)."""
    ds = load_digits((1, 16, 16))
    return np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])


def test_data_forms_give_the_same_dataset(digits):
    """(x, y) arrays, a torch Dataset and a DataLoader (batches of 7) are read into the same arrays and split."""
    x, y = digits[0][:60], digits[1][:60]
    ref = as_dataset((x, y))
    assert ref.sample_shape == (1, 16, 16) and len(ref.x_test) == 15 and ref.classes == 10
    tds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for form in (tds, DataLoader(tds, batch_size=7)):
        assert fingerprint(as_dataset(form)) == fingerprint(ref)
    assert as_dataset("digits") == "digits" and as_dataset(None) is None


def test_data_of_the_wrong_kind_is_bad_input(digits):
    with pytest.raises(UserInputError, match="item 0 of the TensorDataset is a tuple"):
        as_dataset(TensorDataset(torch.from_numpy(digits[0][:4])))   # items (x,), no label
    with pytest.raises(UserInputError, match="cannot use a int as data"):
        as_dataset(3)
    with pytest.raises(UserInputError, match="non-integer labels"):
        as_dataset((digits[0][:8], np.full(8, 0.5)))


def test_state_dict_object_as_weights():
    from tinyprune.convert.loader import load_weights
    from tinyprune.example import build_model, load_example
    net = build_model()
    load_weights(net, load_example().state_dict())
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), load_example().state_dict().values()))
    with pytest.raises(UserInputError, match="the state_dict does not match the model"):
        load_weights(net, {"nope": torch.zeros(1)})


def test_module_cache_key():
    """Same module: same key; a changed weight: another; a class without source: not cached, saying why."""
    from tinyprune.pipeline.build import BuildConfig
    from tinyprune.pipeline.inputs import module_key, take
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    key, why = module_key(a)
    assert why is None and module_key(a) == (key, None)
    with torch.no_grad():
        a[1].bias[0] += 1
    assert module_key(a)[0] != key
    ns: dict = {}
    exec("from torch import nn\nclass Hidden(nn.Module):\n    def forward(self, x):\n        return x\n", ns)
    cfg, mem = take(BuildConfig(model=nn.Sequential(ns["Hidden"](), nn.Flatten())))
    assert "source of Hidden is not available" in mem.no_cache and "not cached" in mem.no_cache
    assert cfg.model == "<Sequential in memory>" and "nonce" in mem.keys


def test_build_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(UserInputError, match="cannot build a object") as e:
        tinyprune.build(object(), BOARD, out=str(tmp_path), progress=False)
    assert e.value.exit_code == 2
    with pytest.raises(UserInputError, match="model file not found: .*missing.tflite"):   # a Path, not a str
        tinyprune.build(tmp_path / "missing.tflite", BOARD, out=str(tmp_path / "o"), progress=False)


def test_build_takes_a_sequential_and_fails_a_collapsed_one(tmp_path):
    """`tinyprune.build(nn.Sequential(...))` used to fail with AttributeError ('lower'); this one gives the same
    output for every input: the build fails (exit 4) after the convert stage, saying it is collapsed."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 10))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.linspace(-1, 1, 10))
    net.input_shape = (1, 1, 16, 16)
    with pytest.raises(ValidationFailed) as e:
        tinyprune.build(net, BOARD, out=str(tmp_path), sim=False, samples=5, calib_samples=20, progress=False)
    assert e.value.exit_code == 4 and "collapsed" in e.value.message
    s = json.loads((tmp_path / f"{BOARD}.failed" / "summary.json").read_text())
    assert s["model"]["name"] == "<Sequential in memory>" and s["status"] == "validation_failed"
    assert s["accuracy"]["collapsed"] is True and s["accuracy"]["measured"] is False
    assert "codegen" not in s["stage_status"]


@pytest.mark.slow
@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_toolchain)])
def test_build_module_state_dict_and_arrays_measures_and_caches(tmp_path, digits, _):
    """An untrained module + the trained state_dict + digits as (x, y) arrays: accuracy measured on those
    arrays; the same call again is served from the cache (in-memory inputs have keys); the user's module
    keeps its own weights."""
    from tinyprune.example import build_model, load_example
    net = build_model()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    kw = dict(out=str(tmp_path), sim=False, samples=20, calib_samples=50, weights=load_example().state_dict(),
              data=digits, progress=False)
    r = tinyprune.build(net, BOARD, **kw)
    s = r.summary
    assert r.status == "ok" and s["accuracy"]["measured"] is True and s["accuracy"]["data"] == "arrays"
    assert s["options"]["data"].startswith("<arrays in memory, sha256 ")
    assert s["validation"]["host"]["accuracy"] >= 0.85 and s["conversion"]["int8_accuracy"] >= 0.85
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    r2 = tinyprune.build(net, BOARD, **kw)
    assert {r2.stages[k] for k in ("convert", "codegen", "firmware", "validate-host")} == {"cached"}
    assert r2.summary["validation"]["host"] == s["validation"]["host"]


@pytest.mark.slow
def test_prune_and_convert_take_arrays_and_a_loader(tmp_path, digits):
    """tinyprune.prune with a state_dict and (x, y) arrays, tinyprune.convert with a module, a state_dict and a
    DataLoader; both callable even after their subpackages were imported (which rebinds the names)."""
    from tinyprune.example import build_model, load_example
    from tinyprune.prune import Budget, PruneConfig, figures
    net = build_model()
    example = torch.zeros(1, 1, 16, 16)
    res = tinyprune.prune(net, example, Budget(max_macs=figures(net, example).macs // 2), data=digits,
                          config=PruneConfig(epochs=0), weights=load_example().state_dict())
    assert res.report["accuracy"]["before"] >= 0.85
    loader = DataLoader(TensorDataset(torch.from_numpy(digits[0][:400]), torch.from_numpy(digits[1][:400])),
                        batch_size=32)
    cv = tinyprune.convert(build_model(), tmp_path / "c", weights=load_example().state_dict(), data=loader,
                           calib_samples=50)
    assert cv.report["data"]["dataset"] == "DataLoader" and cv.report["source"]["weights"] == "state_dict"
    assert cv.report["evaluation"]["int8_accuracy"] >= 0.85

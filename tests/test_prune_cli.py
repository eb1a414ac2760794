"""`tinyprune prune` end to end: the bundled example on nucleo-f401re at half its MACs stays within
2 points of its accuracy on held-out digits; errors exit with their code, print no traceback and
leave no output behind."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from tinyprune.cli import main


def _run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def example_macs():
    from tinyprune.example import INPUT_SHAPE, load_example
    from tinyprune.prune import figures
    return figures(load_example(), torch.zeros(INPUT_SHAPE)).macs


@pytest.mark.slow
def test_example_half_macs_on_f401re_keeps_accuracy(example_macs, tmp_path):
    out = tmp_path / "out"
    half = example_macs // 2
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "prune", "example", "--board", "nucleo-f401re",
                        "--max-macs", str(half), "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "prune.json").read_text())
    assert rep["budget"] == {"max_macs": half, "max_ram": 81920, "max_flash": 524288 - 48 * 1024,
                             "source": "board nucleo-f401re"}
    # the saved model really meets the budget (recomputed, not read from the report)
    from tinyprune.data import load_dataset
    from tinyprune.example import INPUT_SHAPE, build_model
    from tinyprune.prune import figures, rebuild
    from tinyprune.prune.train import accuracy
    model = torch.load(out / "pruned_model.pt", weights_only=False).eval()
    f = figures(model, torch.zeros(INPUT_SHAPE))
    assert f.macs <= half and f.ram_bytes <= 81920 and f.flash_bytes <= 524288 - 48 * 1024
    assert rep["after"]["macs"] == f.macs and rep["before"]["macs"] == example_macs
    ds = load_dataset("digits", input_shape=INPUT_SHAPE)
    acc = accuracy(model, ds.x_test, ds.y_test)
    assert acc == pytest.approx(rep["accuracy"]["after_finetuning"])
    assert acc >= rep["accuracy"]["before"] - 0.02, rep["accuracy"]
    assert rep["accuracy"]["before"] > 0.9
    # rebuild from the factory + channels.json + state_dict gives the same outputs
    m2 = rebuild(build_model, out / "channels.json", out / "pruned_state_dict.pt").eval()
    x = torch.from_numpy(ds.x_test[:32])
    with torch.no_grad():
        assert torch.equal(m2(x), model(x))
    per = {l["name"]: l for l in rep["layers"]}
    assert per["fc"]["out_after"] == 10
    assert all(l["out_after"] >= 1 and l["out_after"] <= l["out_before"] for l in rep["layers"])
    assert "MACs" in r.stdout and "accuracy" in r.stdout


def test_infeasible_budget_exit_3_no_output(tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = _run(["prune", "example", "--max-macs", "10", "--epochs", "0", "-o", str(out)], capsys)
    assert code == 3
    assert "smallest figures reachable" in err and "limit 10" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_criterion_exit_2_lists_names(tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = _run(["prune", "example", "--max-macs", "1000", "--criterion", "obd", "-o", str(out)], capsys)
    assert code == 2
    assert "unknown pruning criterion 'obd'" in err and "snip-it" in err and "synflow" in err
    assert "Traceback" not in err and not out.exists()


def test_untraceable_model_exit_2(tmp_path, capsys):
    src = tmp_path / "net.py"
    src.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        INPUT_SHAPE = (1, 1, 8, 8)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.c = nn.Conv2d(1, 4, 3)
                self.fc = nn.Linear(4 * 36, 10)
            def forward(self, x):
                with torch.no_grad():
                    y = self.c(x)
                return self.fc(y.flatten(1))
        def make():
            return Net()
    """))
    out = tmp_path / "o"
    code, _, err = _run(["prune", f"{src}:make", "--max-macs", "1000", "--epochs", "0", "-o", str(out)], capsys)
    assert code == 2
    assert "cannot trace layer(s) c:" in err and "no_grad" in err and "Traceback" not in err
    assert not out.exists()


def test_no_budget_is_bad_input(tmp_path, capsys):
    code, _, err = _run(["prune", "example", "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "no budget" in err


def test_weight_granularity_says_it_does_not_shrink(tmp_path, capsys, example_macs):
    out = tmp_path / "o"
    code, stdout, err = _run(["prune", "example", "--max-macs", str(example_macs), "--granularity", "weight",
                              "--sparsity", "0.5", "--epochs", "1", "-o", str(out)], capsys)
    assert code == 0, err
    assert "does not shrink MACs, RAM or flash" in stdout
    rep = json.loads((out / "prune.json").read_text())
    assert abs(rep["weight_sparsity"]["achieved"] - 0.5) < 0.01
    assert rep["after"]["macs"] == rep["before"]["macs"] == example_macs


def test_without_data_it_says_nothing_was_fine_tuned(tmp_path, capsys):
    """No --data for a user model: fine-tuning cannot run; that is said (stderr, prune.json), not silent."""
    src = tmp_path / "net.py"
    src.write_text(textwrap.dedent("""
        import torch
        from torch import nn
        INPUT_SHAPE = (1, 1, 8, 8)
        def make():
            return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    """))
    out = tmp_path / "o"
    code, stdout, err = _run(["prune", f"{src}:make", "--max-macs", "20000", "-o", str(out)], capsys)
    assert code == 0, err
    assert "warning: no data and no train_fn: the pruned model is NOT fine-tuned (5 epochs asked for, 0 run)" in err
    assert "accuracy: not measured (no labelled data)" in stdout
    rep = json.loads((out / "prune.json").read_text())
    assert rep["training"]["epochs"] == 0 and len(rep["warnings"]) == 1
    assert rep["accuracy"]["after_finetuning"] is None
    # the two MAC counts: the int8 graph's conv+linear (the budget) and torch-pruning's every-layer count
    import importlib.util

    import torch_pruning as tp
    spec = importlib.util.spec_from_file_location("net_for_count", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = mod.make()
    conv_linear = (16 * 9 * 64) + (16 * 16 * 9 * 64) + 16 * 10      # conv1, conv2, fc at 8x8
    assert rep["before"]["macs"] == conv_linear
    assert rep["before"]["macs_all_layers"] == int(tp.utils.count_ops_and_params(net, torch.zeros(1, 1, 8, 8))[0])
    assert rep["before"]["macs_all_layers"] > conv_linear and rep["after"]["macs_all_layers"] > rep["after"]["macs"]
    assert "macs_all_layers" in rep["macs_definition"] and "MACs counted over every layer" in stdout

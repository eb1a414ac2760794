"""Where a PyTorch model's input shape comes from: --input-shape, the data's samples, the model's
``input_shape`` attribute, ``INPUT_SHAPE`` in the factory's file (not only in the module of the
model's class). Sources that disagree are named; fast (no conversion)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tinyprune.cli import main
from tinyprune.convert.loader import load_torch_model, torch_input_shape
from tinyprune.errors import UserInputError

NET = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.c(x)).mean((2, 3)))
''')


@pytest.fixture
def files(tmp_path):
    (tmp_path / "netdef.py").write_text(NET)
    # the factory lives in another file than the class, with INPUT_SHAPE beside it (as docs/convert.md says)
    (tmp_path / "factory.py").write_text("from netdef import Net\nINPUT_SHAPE = (1, 1, 12, 12)\n\n"
                                         "def make():\n    return Net()\n")
    (tmp_path / "bare.py").write_text("from netdef import Net\n\ndef make():\n    return Net()\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d32.npz", x=rng.uniform(0, 1, (12, 1, 32, 32)).astype(np.float32),
             y=rng.integers(0, 10, 12))
    return tmp_path


def test_shape_from_the_factory_file(files):
    spec = f"{files / 'factory.py'}:make"
    model = load_torch_model(spec)
    assert torch_input_shape(model, spec) == (1, 1, 12, 12)


def test_shape_from_the_data(files):
    spec = f"{files / 'bare.py'}:make"
    model = load_torch_model(spec)
    assert torch_input_shape(model, spec, data=str(files / "d32.npz")) == (1, 1, 32, 32)
    with pytest.raises(UserInputError, match="input shape of .* is unknown"):
        torch_input_shape(model, spec, data="digits")          # digits is resized to anything: no shape


def test_disagreeing_sources_are_named(files):
    spec = f"{files / 'factory.py'}:make"
    model = load_torch_model(spec)
    with pytest.raises(UserInputError) as e:
        torch_input_shape(model, spec, data=str(files / "d32.npz"))
    msg = str(e.value)
    assert "(1, 1, 32, 32)" in msg and "(1, 1, 12, 12)" in msg and "INPUT_SHAPE in the factory's module" in msg
    # --input-shape overrides what the model declares (a fully convolutional model at another size) ...
    assert torch_input_shape(model, spec, input_shape="1,1,8,8") == (1, 1, 8, 8)
    # ... but the data must fit the shape used
    with pytest.raises(UserInputError, match="--input-shape: \\(1, 1, 8, 8\\); the samples of --data"):
        torch_input_shape(model, spec, input_shape="1,1,8,8", data=str(files / "d32.npz"))
    assert torch_input_shape(model, spec, input_shape="1,1,32,32", data=str(files / "d32.npz")) == (1, 1, 32, 32)


def test_user_module_name_is_stable_across_processes(files):
    """pruned_model.pt pickles the model class under this module name: it must not change per process
    (it used Python's salted hash())."""
    import subprocess
    import sys
    code = ("import sys; from tinyprune.convert.loader import _user_module_name; from pathlib import Path; "
            f"print(_user_module_name(Path({str(files / 'bare.py')!r})))")
    names = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin",
                                 "PYTHONPATH": ":".join(sys.path)}).stdout.strip() for seed in ("1", "2")}
    assert len(names) == 1 and names.pop().startswith("_tinyprune_user_")


def test_prune_cli_takes_the_shape_from_the_data(files, tmp_path, capfd):
    code = main(["prune", f"{files / 'bare.py'}:make", "--data", str(files / "d32.npz"), "--max-macs", "20000",
                 "--epochs", "0", "-o", str(tmp_path / "p")])
    err = capfd.readouterr().err
    assert code == 0, err
    import json
    rep = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert rep["input_shape"] == [1, 1, 32, 32]
    assert rep["before"]["macs"] == 32 * 32 * 4 * 9 + 4 * 10

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
    assert names == {"bare"}   # the file's own name: a pickled model loads where the file is importable


def test_a_file_named_like_another_module_gets_a_stable_private_name(tmp_path):
    from tinyprune.convert.loader import _user_module_name
    (tmp_path / "json.py").write_text("X = 1\n")        # `json` is the standard library's
    name = _user_module_name(tmp_path / "json.py")
    assert name.startswith("_tinyprune_user_") and name == _user_module_name(tmp_path / "json.py")


def test_pruned_model_pt_loads_in_a_new_process(tmp_path):
    """docs/pruning.md: torch.load(pruned_model.pt, weights_only=False) in a new process, with the model's
    file importable (here: its folder on sys.path), and tinyprune.prune.rebuild from the factory."""
    import subprocess
    import sys
    src = tmp_path / "src"
    src.mkdir()
    (src / "mynet.py").write_text(
        "import torch\nfrom torch import nn\nINPUT_SHAPE = (1, 1, 8, 8)\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)\n"
        "        self.fc = nn.Linear(16, 10)\n"
        "    def forward(self, x):\n"
        "        x = torch.relu(self.c2(torch.relu(self.c1(x))))\n"
        "        return self.fc(x.mean((2, 3)))\n"
        "def make():\n    return Net()\n")
    out = tmp_path / "pruned"
    r = subprocess.run([sys.executable, "-m", "tinyprune.cli", "prune", f"{src / 'mynet.py'}:make",
                        "--max-macs", "20000", "--epochs", "0", "-o", str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    code = (f"import sys, json, torch; sys.path.insert(0, {str(src)!r}); "
            f"m = torch.load({str(out / 'pruned_model.pt')!r}, weights_only=False); "
            "print(type(m).__module__, m.c1.out_channels, tuple(m(torch.zeros(1, 1, 8, 8)).shape))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    module, width, shape = r.stdout.split(maxsplit=2)
    assert module == "mynet" and int(width) < 16 and shape.strip() == "(1, 10)"


def test_prune_cli_takes_the_shape_from_the_data(files, tmp_path, capfd):
    code = main(["prune", f"{files / 'bare.py'}:make", "--data", str(files / "d32.npz"), "--max-macs", "20000",
                 "--epochs", "0", "-o", str(tmp_path / "p")])
    err = capfd.readouterr().err
    assert code == 0, err
    import json
    rep = json.loads((tmp_path / "p" / "prune.json").read_text())
    assert rep["input_shape"] == [1, 1, 32, 32]
    assert rep["before"]["macs"] == 32 * 32 * 4 * 9 + 4 * 10

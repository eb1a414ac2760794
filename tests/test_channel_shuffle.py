"""Channel shuffle (ShuffleNet): the TRANSPOSE lowering (drop size-1 axes, merge axes that move
together) that lets the 4-D kernel run 5-/6-D transposes, bit-exact with TFLite Micro through
``tinyprune codegen --check`` on TensorFlow-converted models; the refusal of a transpose that stays
above 4-D; and (below) the prune stage's tracing of shape access in forward()."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyprune.codegen.layout_ops import lower_transpose, reduce_transpose
from tinyprune.errors import UnsupportedModelError

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import codegen_opmodels as M  # noqa: E402

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host gcc")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinyprune.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


# ------------------------------------------------------------------------------------------------
# lowering (pure Python)

def test_reduce_transpose_moves_bytes_like_numpy_for_random_ranks_up_to_6():
    rng = np.random.default_rng(0)
    lowered = refused = 0
    for _ in range(400):
        r = int(rng.integers(1, 7))
        shape = [int(s) for s in rng.choice([1, 1, 2, 3, 4], size=r)]
        perm = [int(p) for p in rng.permutation(r)]
        x = rng.integers(-128, 128, size=shape).astype(np.int8)
        want = np.transpose(x, perm).ravel()
        dims, p = reduce_transpose(shape, perm)
        assert np.array_equal(np.transpose(x.reshape(dims), p).ravel(), want), (shape, perm, dims, p)
        if len(dims) <= 4:
            d4, p4 = lower_transpose(shape, perm)
            assert len(d4) == len(p4) == 4
            assert np.array_equal(np.transpose(x.reshape(d4), p4).ravel(), want), (shape, perm, d4, p4)
            lowered += 1
        else:
            with pytest.raises(UnsupportedModelError, match="after dropping size-1 dimensions"):
                lower_transpose(shape, perm)
            refused += 1
    assert lowered > 300 and refused > 0


def test_channel_shuffle_lowers_to_3d():
    assert reduce_transpose((1, 5, 7, 3, 4), (0, 1, 2, 4, 3)) == ([35, 3, 4], [0, 2, 1])
    assert lower_transpose((1, 5, 7, 3, 4), (0, 1, 2, 4, 3)) == ([1, 35, 3, 4], [0, 1, 3, 2])
    # g = 1 or C/g = 1: nothing moves
    assert reduce_transpose((1, 5, 7, 1, 4), (0, 1, 2, 4, 3)) == ([140], [0])
    assert reduce_transpose((1, 1, 1, 1, 1, 1), (5, 4, 3, 2, 1, 0)) == ([1], [0])


# ------------------------------------------------------------------------------------------------
# TensorFlow-converted models through codegen --check (host gcc, TFLite Micro)

@pytest.fixture(scope="module")
def shuffle_tflite(tmp_path_factory):
    pytest.importorskip("tensorflow")
    cache = {}

    def get(seed):
        if seed not in cache:
            rng = np.random.default_rng(seed)
            fn, shapes = M.channel_shuffle_cases(rng)
            p = tmp_path_factory.mktemp(f"shuffle{seed}") / "model.tflite"
            p.write_bytes(M.convert(fn, shapes, rng))
            cache[seed] = p
        return cache[seed]
    return get


@needs_gcc
@pytest.mark.parametrize("seed", [0, 1])
def test_5d_channel_shuffle_codegen_check_bit_exact(shuffle_tflite, seed, tmp_path):
    from tinyprune.codegen.tflite_reader import read_model
    path = shuffle_tflite(seed)
    g = read_model(path).graph
    five_d = [op for op in g.ops if op.kind == "TRANSPOSE" and len(g.tensors[op.inputs[0]].shape) == 5]
    assert len(five_d) == 2 and all(op.options["perm"] == [0, 1, 2, 4, 3] for op in five_d)
    r = _cli("codegen", path, "-o", tmp_path / "cg", "--check", "--random", 20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "bit-exact with TFLite Micro on 20 inputs" in r.stdout
    src = (tmp_path / "cg" / "model.c").read_text()
    assert src.count("tp_transpose_s8(") == 2


def test_transpose_still_5d_after_merging_is_refused_with_exit_2(tmp_path):
    tf = pytest.importorskip("tensorflow")

    @tf.function
    def f(x):
        t = tf.reshape(x, [2, 3, 4, 5, 6])
        return tf.reshape(tf.transpose(t, [4, 3, 2, 1, 0]), [1, 720])
    rng = np.random.default_rng(3)
    path = tmp_path / "t5.tflite"
    path.write_bytes(M.convert(f, [(1, 720)], rng))
    r = _cli("codegen", path, "-o", tmp_path / "cg")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "TRANSPOSE" in r.stderr and "still has 5 dimensions" in r.stderr and "at most 4" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "cg").exists()

"""tinyprune: from a PyTorch/ONNX/int8-TFLite model to validated microcontroller firmware.

Pipeline stages, one subpackage each (the CLI in ``cli.py`` only calls these):

    boards    board catalog (boards/*.toml), schema-validated
    data      datasets: user .npz files and the built-in ``digits``
    example   the bundled example model and its checkpoint
    prune     structured pruning to a board's budget
    convert   PyTorch/ONNX -> ONNX -> int8 TFLite (onnx2tf + TF converter)
    codegen   int8 TFLite -> C (weights, static memory plan, op schedule)
    firmware  cross-compiled firmware around the generated model
    validate  host / QEMU / board validation over the serial protocol
    pipeline  ``tinyprune build``: all stages with caching
    report    HTML / Markdown reports
    bench     instruction-count benchmarks in QEMU

Python API: ``tinyprune.build``, ``tinyprune.prune`` and ``tinyprune.convert`` take a model as a path/spec
or an ``nn.Module``, ``weights`` as a file or a state_dict, and data as a path, ``"digits"``, NumPy
arrays ``(x, y)``, a ``tinyprune.data.Dataset`` or a torch ``Dataset``/``DataLoader`` of ``(x, y)``
(``tinyprune.data.as_dataset``).
"""

__version__ = "0.1.0"


def __getattr__(name):  # lazy public API so ``import tinyprune`` stays cheap
    if name == "build":
        from tinyprune.pipeline import build
        return build
    if name == "prune":
        from tinyprune.prune import prune
        return prune
    if name == "convert":
        from tinyprune.convert import convert
        return convert
    raise AttributeError(f"module 'tinyprune' has no attribute {name!r}")

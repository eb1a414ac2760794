"""The model corpus (issue 11): architectures real TinyML users deploy, from four sources, each ready
for ``tinyprune build``.

    from benchmarks.corpus import ENTRIES, get, prepare
    args = prepare(get("ds_cnn_kws"), workdir)   # -> ["…/factories.py:ds_cnn_kws", "--weights", …, "--data", …]

Sources: ``torchvision`` (the real definitions, imported without torchvision's C ops:
``torchvision_defs.py``), ``tinyprune`` (written here, ``nets.py``, or reused from
``tinyprune/prune/zoo.py``), ``tflm`` (TensorFlow Lite Micro's own example int8 models, kept in
``tests/data/tflm_examples/``) and ``mlperf-tiny`` (``../shared/models/mlperf-tiny/``; skipped with a
reason when absent). PyTorch models are trained briefly on the data ``data.py`` makes (cached:
``weights.py``); ``prepare`` writes that data as an .npz (``x``/``y`` calibration and fine-tuning
samples, ``x_test``/``y_test`` held out) so ``build`` measures float and int8 accuracy. The external
int8 models come without data of their own: they are validated on random inputs (bit-exactness only,
accuracy "not measured").

The runner is ``benchmarks/run_corpus.py``; the table it writes is ``benchmarks/CORPUS.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FACTORIES = Path(__file__).resolve().parent / "factories.py"
TFLM_DIR = ROOT / "tests" / "data" / "tflm_examples"
MLPERF_DIR = ROOT.parent / "shared" / "models" / "mlperf-tiny"
CALIB_SAMPLES, TEST_SAMPLES = 256, 200


class Unavailable(Exception):
    """The entry cannot be prepared on this machine (a missing optional dependency or model file);
    the message says what is missing. Runner and tests skip it with that reason."""


@dataclass(frozen=True)
class Entry:
    name: str
    source: str                    # torchvision | tinyprune | tflm | mlperf-tiny
    description: str               # what it exercises
    input_shape: tuple[int, ...]   # batch 1, PyTorch layout (int8 files: their NHWC input as stored)
    classes: int                   # outputs (for a dense/reconstruction output: channels/features)
    factory: str | None = None     # factories.py function (PyTorch entries)
    tflite: Path | None = None     # int8 model file (external entries)
    data: str | None = None        # data.py recipe (PyTorch entries)
    epochs: int = 0
    train_samples: int | None = None   # train on the first N training samples (None: all)
    lr: float = 0.01
    ci: bool = False               # part of tests/test_corpus.py's build subset
    build_args: tuple[str, ...] = field(default=())   # extra `tinyprune build` options

    @property
    def kind(self) -> str:
        return "tflite" if self.tflite is not None else "pytorch"


def _tv(name, shape, desc, epochs, ci=False, samples=512):
    return Entry(name, "torchvision", desc, (1, *shape), 10, factory=name, data="digits_rgb", epochs=epochs,
                 train_samples=samples, ci=ci)


def _own(name, shape, classes, data, desc, epochs, ci=False, lr=0.01, samples=None):
    return Entry(name, "tinyprune", desc, (1, *shape), classes, factory=name, data=data, epochs=epochs, ci=ci, lr=lr,
                 train_samples=samples)


ENTRIES: tuple[Entry, ...] = (
    _tv("tv_mobilenet_v2_035_96", (3, 96, 96), "torchvision mobilenet_v2(width_mult=0.35): inverted residuals, "
        "ReLU6, depthwise, Dropout, functional adaptive_avg_pool2d", 3),
    _tv("tv_mobilenet_v2_035_32", (3, 32, 32), "the same at 32x32 (the CI subset's torchvision net)", 4, ci=True),
    _tv("tv_mobilenet_v3_small_64", (3, 64, 64), "torchvision mobilenet_v3_small: hard-swish, squeeze-and-excitation "
        "with hard-sigmoid and broadcast MUL, 1.5 M parameters (over 1 MB flash: must be pruned)", 3),
    _tv("tv_mnasnet0_5_64", (3, 64, 64), "torchvision mnasnet0_5: inverted residuals with 3x3/5x5 depthwise, "
        "0.94 M parameters", 3),
    _tv("tv_squeezenet1_1_64", (3, 64, 64), "torchvision squeezenet1_1: fire modules (concat of 1x1/3x3 branches), "
        "ceil-mode max pool, conv classifier + adaptive average pool", 3),
    _tv("tv_shufflenet_v2_x0_5_64", (3, 64, 64), "torchvision shufflenet_v2_x0_5: channel split/shuffle with "
        "x.size() + view/transpose, padded max-pool stem", 3),
    _tv("tv_resnet18_64", (3, 64, 64), "torchvision resnet18: 11.2 M parameters, padded max-pool stem, residual adds "
        "(11 MB int8: build must prune it to fit 1 MB)", 2, samples=384),
    _own("mcunet_style_96", (3, 96, 96), 10, "digits_rgb", "MCUNet-style backbone: inverted residuals with 3/5/7 "
         "kernels and expand ratios 1-6, ReLU6", 3, samples=512),
    _own("ds_cnn_kws", (1, 49, 10), 12, "kws_synth", "DS-CNN keyword spotting (MLPerf Tiny KWS architecture) on a "
         "49x10 MFCC-like map, 10x4 strided stem, 4 depthwise-separable blocks", 8),
    _own("shufflenet_v1_style_64", (3, 64, 64), 10, "digits_rgb", "ShuffleNet-v1-style: grouped 1x1 convs (groups "
         "2, 3, 4), channel shuffle, avg-pool + concat down-sampling, padded max pool", 4, samples=768),
    _own("audio_conv1d", (1, 512), 8, "tones", "1-D conv on a raw 512-sample waveform (M5-like), strided Conv1d, "
         "mean over time", 8),
    _own("fc_autoencoder", (640,), 640, "spectra_ae", "MLPerf Tiny anomaly-detection-style FC autoencoder "
         "640-128-128-128-8-128-128-128-640 with BatchNorm1d, flat (1, 640) input, output = reconstruction", 30,
         lr=0.003),
    _own("se_hardsigmoid_32", (3, 32, 32), 10, "digits_rgb", "squeeze-and-excitation with a hard-sigmoid gate "
         "(broadcast MUL), hard-swish, skip add (zoo.SEHswishNet)", 6, ci=True),
    _own("ceil_maxpool_30", (1, 30, 30), 10, "digits_gray", "max pools with ceil_mode=True on odd feature maps", 6),
    _own("cat_ranges_32", (1, 32, 32), 10, "digits_gray", "torch.cat of a ReLU6 branch and a x16 linear branch "
         "(one int8 scale for very different ranges)", 6),
    _own("seg_nearest_32", (1, 32, 32), 4, "digits_seg", "tiny segmentation head: strided encoder, nearest "
         "upsampling x2, skip concat, per-pixel classes (zoo.TinySegNet)", 6),
    Entry("tflm_hello_world", "tflm", "TFLite Micro hello_world: 3 FULLY_CONNECTED layers, sine regression "
          "(1 input, 1 output)", (1, 1), 1, tflite=TFLM_DIR / "hello_world_int8.tflite", ci=True),
    Entry("tflm_micro_speech", "tflm", "TFLite Micro micro_speech: DEPTHWISE_CONV_2D, FULLY_CONNECTED, SOFTMAX "
          "on a 49x40 spectrogram, 4 classes", (1, 1960), 4, tflite=TFLM_DIR / "micro_speech_quantized.tflite"),
    Entry("tflm_person_detect", "tflm", "TFLite Micro person_detect: MobileNet-v1 0.25 at 96x96x1, 2 classes, "
          "AVERAGE_POOL_2D, RESHAPE, SOFTMAX", (1, 96, 96, 1), 2, tflite=TFLM_DIR / "person_detect.tflite"),
    Entry("mlperf_ic_resnet8", "mlperf-tiny", "MLPerf Tiny image classification ResNet-8 (CIFAR-10, 32x32x3)",
          (1, 32, 32, 3), 10, tflite=MLPERF_DIR / "ic_resnet8_int8.tflite"),
    Entry("mlperf_kws_dscnn", "mlperf-tiny", "MLPerf Tiny keyword spotting DS-CNN (49x10x1, 12 classes)",
          (1, 49, 10, 1), 12, tflite=MLPERF_DIR / "kws_dscnn_int8.tflite"),
)


def get(name: str) -> Entry:
    for e in ENTRIES:
        if e.name == name:
            return e
    raise KeyError(f"no corpus model {name!r}; known: {', '.join(e.name for e in ENTRIES)}")


def make_data(entry: Entry):
    """The entry's arrays (``data.Arrays``), made by its recipe; None for an int8 file."""
    from . import data
    if entry.data is None:
        return None
    return data.RECIPES[entry.data](entry.input_shape[1:], entry.classes)


def prepare(entry: Entry, workdir: str | Path, log=print) -> list[str]:
    """Write what ``tinyprune build`` needs for ``entry`` into ``workdir`` and return the build's model
    and input arguments (without ``--board``/``-o``). PyTorch entries: trained weights (cached) and
    ``data.npz``; int8 files: the file's path (no data: random inputs). Raises Unavailable."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if entry.tflite is not None:
        if not entry.tflite.is_file():
            raise Unavailable(f"{entry.tflite} is absent" + (" (the MLPerf Tiny models live in ../shared/models/"
                              "mlperf-tiny beside the repository)" if entry.source == "mlperf-tiny" else ""))
        return [str(entry.tflite), *entry.build_args]
    if entry.source == "torchvision":
        from .torchvision_defs import TorchvisionMissing, models
        try:
            models()
        except TorchvisionMissing as e:
            raise Unavailable(str(e)) from None
    from .weights import trained_weights
    arrays = make_data(entry)
    weights, _ = trained_weights(entry, arrays, log=log)
    npz = workdir / "data.npz"
    np.savez(npz, x=arrays.x_train[:CALIB_SAMPLES], y=arrays.y_train[:CALIB_SAMPLES],
             x_test=arrays.x_test[:TEST_SAMPLES], y_test=arrays.y_test[:TEST_SAMPLES])
    return [f"{FACTORIES}:{entry.factory}", "--weights", str(weights), "--data", str(npz), *entry.build_args]

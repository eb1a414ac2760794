"""Single-op int8 TFLite models for the code-generation operator tests, built with TensorFlow's
converter from tf.function graphs (constant weights, a random representative dataset), several
randomised cases per model so that one compile checks many configurations.

Each builder takes a numpy Generator and returns (tf.function, input shapes); ``convert`` turns it
into full-integer int8 TFLite bytes."""
from __future__ import annotations

import numpy as np


def convert(fn, input_shapes, rng, *, int8_io=True, quantize=True, calib_range=None) -> bytes:
    import tensorflow as tf
    specs = [tf.TensorSpec(s, tf.float32) for s in input_shapes]
    conc = fn.get_concrete_function(*specs)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([conc], fn)
    if quantize:
        lo, hi = calib_range or sorted(rng.uniform(-4.0, 4.0, 2))
        lo, hi = min(lo, -0.1), max(hi, 0.1)
        data = [[rng.uniform(lo, hi, s).astype(np.float32) for s in input_shapes] for _ in range(24)]

        def rep():
            yield from data
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    return conv.convert()


def _w(rng, shape, scale=None):
    scale = scale if scale is not None else rng.uniform(0.05, 0.8)
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def conv_cases(rng):
    """CONV_2D: padding SAME/VALID, strides, dilations, 1x1, fused NONE/RELU/RELU6, per-channel."""
    import tensorflow as tf
    h, w, c = int(rng.integers(7, 14)), int(rng.integers(7, 14)), int(rng.integers(1, 6))
    cfgs = []
    for k in range(5):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride = int(rng.integers(1, 4))
        dil = 1 if stride > 1 or k == 0 else int(rng.integers(1, 3))
        pad = ["SAME", "VALID"][int(rng.integers(0, 2))]
        if pad == "VALID" and ((kh - 1) * dil + 1 > h or (kw - 1) * dil + 1 > w):
            pad = "SAME"
        act = ["none", "relu", "relu6"][k % 3]
        oc = int(rng.integers(1, 9))
        cfgs.append((_w(rng, (kh, kw, c, oc)), _w(rng, (oc,), 0.3), stride, dil, pad, act))

    @tf.function
    def f(x):
        outs = []
        for wt, b, s, d, p, a in cfgs:
            y = tf.nn.conv2d(x, wt, strides=s, padding=p, dilations=d) + b
            y = tf.nn.relu(y) if a == "relu" else tf.nn.relu6(y) if a == "relu6" else y
            outs.append(y)
        return outs
    return f, [(1, h, w, c)]


def grouped_conv_cases(rng):
    """Grouped CONV_2D (filter in_c = input c / groups): groups 2-4, 2-5 channels per group (input
    channels often not a multiple of 4), 1x1 and 3x3 (and other) kernels, strides 1-2, SAME/VALID,
    fused activations; every case's filter and output channels differ."""
    import tensorflow as tf
    g = int(rng.integers(2, 5))
    cg = int(rng.integers(2, 6))
    h, w, c = int(rng.integers(6, 12)), int(rng.integers(6, 12)), g * cg
    cfgs = []
    for k in range(4):
        kh = kw = [1, 3][k % 2] if k < 3 else int(rng.integers(1, 4))
        stride = [1, 2][(k // 2) % 2] if k < 3 else int(rng.integers(1, 3))
        pad = ["SAME", "VALID"][int(rng.integers(0, 2))]
        act = ["none", "relu", "relu6"][k % 3]
        oc = g * int(rng.integers(1, 4))
        cfgs.append((_w(rng, (kh, kw, cg, oc)), _w(rng, (oc,), 0.3), stride, pad, act))

    @tf.function
    def f(x):
        outs = []
        for wt, b, s, p, a in cfgs:
            y = tf.nn.conv2d(x, wt, strides=s, padding=p) + b
            y = tf.nn.relu(y) if a == "relu" else tf.nn.relu6(y) if a == "relu6" else y
            outs.append(y)
        return outs
    return f, [(1, h, w, c)]


def depthwise_cases(rng):
    import tensorflow as tf
    h, w, c = int(rng.integers(6, 12)), int(rng.integers(6, 12)), int(rng.integers(1, 6))
    cfgs = []
    for k in range(4):
        mult = int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride = int(rng.integers(1, 3))
        dil = 1  # TF lowers dilated depthwise convolutions to SPACE_TO_BATCH_ND + depthwise
        pad = ["SAME", "VALID"][k % 2]
        act = ["relu", "none", "relu6", "none"][k]
        cfgs.append((_w(rng, (kh, kw, c, mult)), _w(rng, (c * mult,), 0.3), stride, dil, pad, act))

    @tf.function
    def f(x):
        outs = []
        for wt, b, s, d, p, a in cfgs:
            y = tf.nn.depthwise_conv2d(x, wt, strides=[1, s, s, 1], padding=p, dilations=[d, d]) + b
            y = tf.nn.relu(y) if a == "relu" else tf.nn.relu6(y) if a == "relu6" else y
            outs.append(y)
        return outs
    return f, [(1, h, w, c)]


def dense_activation_cases(rng):
    """FULLY_CONNECTED (+RELU), SOFTMAX (beta 1 and not), LOGISTIC, HARD_SWISH, RELU, RELU6 standalone."""
    import tensorflow as tf
    n_in = int(rng.integers(3, 40))
    w1, b1 = _w(rng, (n_in, int(rng.integers(2, 20)))), None
    w2 = _w(rng, (n_in, int(rng.integers(2, 12))))
    b2 = _w(rng, (w2.shape[1],), 0.2)

    @tf.function
    def f(x):
        a = tf.matmul(x, w1)
        b = tf.nn.relu(tf.matmul(x, w2) + b2)
        return [a, b, tf.nn.softmax(a), tf.nn.softmax(a * 0.5), tf.sigmoid(x), x * tf.nn.relu6(x + 3.0) / 6.0]
    return f, [(1, n_in)]


def elementwise_cases(rng):
    """ADD/MUL (same shape, broadcast, constant operand), MEAN (keepdims and not), squeeze-excite."""
    import tensorflow as tf
    h, w, c = int(rng.integers(3, 8)), int(rng.integers(3, 8)), int(rng.integers(2, 6))
    k1 = _w(rng, (1, 1, c, c))
    k2 = _w(rng, (1, 1, c, c))
    cst = _w(rng, (1, 1, 1, c), 1.0)

    @tf.function
    def f(x, y):
        a = tf.nn.conv2d(x, k1, 1, "SAME")
        b = tf.nn.conv2d(y, k2, 1, "SAME")
        s = tf.nn.relu(a + b)
        m = a * b
        bc = x + tf.reduce_mean(y, axis=[1, 2], keepdims=True)
        mc = x * cst
        se = x * tf.sigmoid(tf.reduce_mean(x, axis=[1, 2], keepdims=True))
        return [s, m, bc, mc, se, tf.reduce_mean(y, axis=[1, 2]), tf.reduce_mean(a, axis=[2], keepdims=True)]
    return f, [(1, h, w, c), (1, h, w, c)]


def pool_cases(rng):
    import tensorflow as tf
    h, w, c = int(rng.integers(5, 12)), int(rng.integers(5, 12)), int(rng.integers(1, 5))
    cfgs = []
    for k in range(4):
        fs = int(rng.integers(1, 4))
        s = int(rng.integers(1, 3))
        cfgs.append((fs, s, ["SAME", "VALID"][k % 2]))

    @tf.function
    def f(x):
        outs = []
        for fs, s, p in cfgs:
            outs.append(tf.nn.avg_pool2d(x, fs, s, p))
            outs.append(tf.nn.max_pool2d(x, fs, s, p))
        return outs
    return f, [(1, h, w, c)]


def layout_cases(rng):
    """PAD, CONCATENATION (also of differently scaled inputs), TRANSPOSE, RESHAPE."""
    import tensorflow as tf
    h, w, c = int(rng.integers(3, 7)), int(rng.integers(3, 7)), int(rng.integers(1, 5))
    pads = [[0, 0], [int(rng.integers(0, 3)), int(rng.integers(0, 3))], [int(rng.integers(0, 3)), 1], [0, 0]]
    k1 = _w(rng, (1, 1, c, 3))

    @tf.function
    def f(x):
        p = tf.pad(x, pads)
        a = tf.nn.conv2d(x, k1, 1, "SAME")
        cat = tf.concat([x, x], axis=3)
        cat2 = tf.concat([a * 3.0, x], axis=3)   # different input ranges: the converter requantizes
        t = tf.nn.relu(tf.transpose(a, [0, 2, 1, 3]))
        r = tf.reshape(a, [1, -1])
        r6 = tf.nn.relu6(tf.transpose(a, [0, 2, 1, 3]))
        return [p, cat, t, r, cat2, r6]
    return f, [(1, h, w, c)]


def unsupported_abs(rng):
    """tf.abs -> ABS, an operator the int8 code generator does not take."""
    import tensorflow as tf
    w = _w(rng, (6, 4))

    @tf.function
    def f(x):
        return tf.abs(tf.matmul(x, w))
    return f, [(1, 6)]


def channel_shuffle_cases(rng):
    """Channel shuffle as ShuffleNet writes it: RESHAPE to (1, H, W, g, C/g), 5-D TRANSPOSE
    (0, 1, 2, 4, 3), RESHAPE back; random H, W, g, C/g (sizes 1 included), after a 1x1 conv so the
    input is quantised data, and a second shuffle with H = W = 1 (all but two axes of size 1)."""
    import tensorflow as tf
    h, w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    g, cg = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    c = g * cg
    k1 = _w(rng, (1, 1, c, c))

    def shuffle(t, hh, ww):
        t = tf.reshape(t, [1, hh, ww, g, cg])
        t = tf.transpose(t, [0, 1, 2, 4, 3])
        return tf.reshape(t, [1, hh, ww, c])

    @tf.function
    def f(x):
        a = tf.nn.conv2d(x, k1, 1, "SAME")
        s = shuffle(a, h, w)
        m = tf.reduce_mean(a, axis=[1, 2], keepdims=True)
        return [s, shuffle(m, 1, 1)]
    return f, [(1, h, w, c)]


def resize_cases(rng):
    """RESIZE_NEAREST_NEIGHBOR: whole-number factors 1-4 per axis, arbitrary output sizes (up and down),
    align_corners / half_pixel_centers (TF refuses both at once), after a convolution (another scale
    than the model input's) and into a concatenation, as in a segmentation decoder."""
    import tensorflow as tf
    h, w, c = int(rng.integers(2, 7)), int(rng.integers(2, 7)), int(rng.integers(1, 5))
    flags = [(False, False), (True, False), (False, True)]
    cfgs = []
    for k in range(6):
        if k < 4:
            size = (h * int(rng.integers(1, 5)), w * int(rng.integers(1, 5)))
        else:
            size = (int(rng.integers(1, 3 * h + 1)), int(rng.integers(1, 3 * w + 1)))
        cfgs.append((size, *flags[k % 3]))
    k1 = _w(rng, (1, 1, c, 3))

    @tf.function
    def f(x):
        outs = [tf.compat.v1.image.resize_nearest_neighbor(x, s, align_corners=a, half_pixel_centers=hp)
                for s, a, hp in cfgs]
        y = tf.nn.relu(tf.nn.conv2d(x, k1, 1, "SAME"))
        up = tf.compat.v1.image.resize_nearest_neighbor(y, (2 * h, 2 * w))
        skip = tf.compat.v1.image.resize_nearest_neighbor(x, (2 * h, 2 * w), half_pixel_centers=True)
        outs.append(tf.concat([up, skip], axis=3))
        outs.append(tf.image.resize(y, (3 * h, w), method="nearest"))
        return outs
    return f, [(1, h, w, c)]


def activation_cases(rng):
    """TANH, LEAKY_RELU (alpha in (0, 1), above 1 and negative) and PRELU (one slope, a slope per channel,
    a slope per element; the converter fuses Keras' PReLU into PRELU), on the model input and after a
    convolution (other scales and zero points); channel counts not multiples of 4."""
    import tensorflow as tf
    h, w, c = int(rng.integers(2, 7)), int(rng.integers(2, 7)), int(rng.integers(1, 8))
    k1 = _w(rng, (1, 1, c, c))
    ks = [_w(rng, (1, 1, c, c)) for _ in range(3)]
    alphas = [float(rng.uniform(0.01, 0.5)), float(rng.uniform(1.1, 3.0)), float(rng.uniform(-0.8, -0.05))]
    prelus = []
    for shape, shared in (((1, 1, 1), [1, 2, 3]), ((1, 1, c), [1, 2]), ((h, w, c), None)):
        layer = tf.keras.layers.PReLU(shared_axes=shared, alpha_initializer=tf.keras.initializers.Constant(
            rng.uniform(-0.6, 0.6, shape).astype(np.float32)))
        layer.build((1, h, w, c))
        prelus.append(layer)

    @tf.function
    def f(x):
        y = tf.nn.conv2d(x, k1, 1, "SAME")
        outs = [tf.tanh(x), tf.tanh(y * 3.0)]
        outs += [tf.nn.leaky_relu(y, a) for a in alphas]
        outs += [p(tf.nn.conv2d(x, k, 1, "SAME")) for p, k in zip(prelus, ks)]   # one PReLU per tensor: the
        return outs                                                               # converter fuses it then
    return f, [(1, h, w, c)]


def slice_cases(rng):
    """STRIDED_SLICE as converters emit it for torch.chunk / torch.split / x[:, a:b] (channel ranges of an
    NHWC tensor), and general slices: negative and masked begin/end, strides > 1 and < 0, a shrunk axis,
    2-D inputs; SPLIT and SPLIT_V (tf.split, as a TF/Keras model has them), read as slices."""
    import tensorflow as tf
    h, w, c = int(rng.integers(2, 7)), int(rng.integers(2, 7)), int(rng.integers(3, 10))
    k1 = _w(rng, (1, 1, c, c))
    cut = int(rng.integers(1, c))
    n_in = int(rng.integers(4, 20))
    wd = _w(rng, (c, n_in))

    @tf.function
    def f(x):
        y = tf.nn.conv2d(x, k1, 1, "SAME")
        a, b = y[:, :, :, :cut], y[:, :, :, cut:]
        k = c // 3       # torch.chunk(y, 3, dim=1) after onnx2tf: three channel slices
        thirds = [y[:, :, :, i * k:(i + 1) * k] for i in range(3)]
        thirds += tf.split(y[:, :, :, :3 * k], 3, axis=3)                 # SPLIT (a TF/Keras model's)
        thirds += tf.split(y, [cut, -1], axis=3)                           # SPLIT_V
        thirds += tf.split(y, [1, h - 1], axis=1) if h > 1 else []
        outs = [a, b, *thirds, y[:, 1:, ::2, :], y[:, ::-1, :, -2:], y[:, -1, :, 1:],
                x[:, h // 2:, : w // 2 + 1, ::3]]
        z = tf.matmul(tf.reduce_mean(y, axis=[1, 2]), wd)
        outs += [z[:, 1:n_in - 1], z[:, ::-2]]
        return outs
    return f, [(1, h, w, c)]

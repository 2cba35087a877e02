"""Reference models for 28×28 MNIST digits, Keras 3 side (inputs NHWC: (N, 28, 28, 1)).

Same layers, shapes and parameter counts as ``compresslib/torch/models.py``.
Stride-2 3×3 convolutions pad explicitly (``ZeroPadding2D(1)`` then
``"valid"``) so that they see exactly the pixels PyTorch's ``padding=1``
does; BatchNorm uses PyTorch's epsilon (1e-5) and momentum (0.9 ≙ 0.1).

Example:
    >>> from compresslib.keras.models import build
    >>> build("lenet300_100").count_params()
    266610
"""
from __future__ import annotations

import keras
from keras import layers

MODEL_NAMES = ("lenet300_100", "lenet5", "resnet8", "mlp_wide", "lenet5_caffe")
INPUT_SHAPE = (28, 28, 1)


def _mlp(name: str, widths: tuple[int, ...], num_classes: int) -> keras.Model:
    inputs = keras.Input(INPUT_SHAPE, name="input")
    x = layers.Flatten(name="flatten")(inputs)
    for i, w in enumerate(widths):
        x = layers.Dense(w, activation="relu", name=f"fc{i + 1}")(x)
    outputs = layers.Dense(num_classes, name=f"fc{len(widths) + 1}")(x)
    return keras.Model(inputs, outputs, name=name)


def lenet300_100(num_classes: int = 10) -> keras.Model:
    """LeNet-300-100: 784 → 300 → 100 → 10, ReLU."""
    return _mlp("lenet300_100", (300, 100), num_classes)


def mlp_wide(num_classes: int = 10) -> keras.Model:
    """A Dense-heavy MLP, 784 → 1024 → 1024 → 10."""
    return _mlp("mlp_wide", (1024, 1024), num_classes)


def lenet5(num_classes: int = 10) -> keras.Model:
    """LeNet-5 for 28×28 inputs (conv 5×5 padded, ReLU and max-pooling)."""
    inputs = keras.Input(INPUT_SHAPE, name="input")
    x = layers.Conv2D(6, 5, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = layers.Dense(num_classes, name="fc3")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def lenet5_caffe(num_classes: int = 10) -> keras.Model:
    """Caffe's LeNet-5 (Han et al. 2016): conv 20@5×5, pool, conv 50@5×5, pool, fc 500, ReLU, fc 10; 431,080 parameters."""
    inputs = keras.Input(INPUT_SHAPE, name="input")
    x = layers.Conv2D(20, 5, name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(50, 5, name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(500, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, name="fc2")(x)
    return keras.Model(inputs, outputs, name="lenet5_caffe")


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def _conv3x3(x, filters: int, stride: int, name: str):
    if stride == 1:
        return layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, 3, strides=stride, padding="valid", use_bias=False, name=name)(x)


def basic_block(x, filters: int, stride: int, name: str):
    """ResNet basic block: conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU."""
    out = _conv3x3(x, filters, stride, f"{name}_conv1")
    out = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(out))
    out = _bn(f"{name}_bn2")(_conv3x3(out, filters, 1, f"{name}_conv2"))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_sc_conv")(x)
        shortcut = _bn(f"{name}_sc_bn")(shortcut)
    out = layers.Add(name=f"{name}_add")([out, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(out)


def resnet8(num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)) -> keras.Model:
    """The small ResNet: stem, three basic blocks (16, 32, 64 channels), pool, dense."""
    w1, w2, w3 = widths
    inputs = keras.Input(INPUT_SHAPE, name="input")
    x = _conv3x3(inputs, w1, 1, "stem_conv")
    x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(x))
    x = basic_block(x, w1, 1, "layer1")
    x = basic_block(x, w2, 2, "layer2")
    x = basic_block(x, w3, 2, "layer3")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="resnet8")


_BUILDERS = {"lenet300_100": lenet300_100, "lenet5": lenet5, "resnet8": resnet8, "mlp_wide": mlp_wide,
             "lenet5_caffe": lenet5_caffe}


def build(name: str, num_classes: int = 10) -> keras.Model:
    """A freshly initialised reference model by ``name`` (one of ``MODEL_NAMES``)."""
    if name not in _BUILDERS:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    return _BUILDERS[name](num_classes)

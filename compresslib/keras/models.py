"""Models for 28×28 MNIST digits, Keras 3 side (inputs NHWC: (N, 28, 28, 1)): reference models and families.

Same layers, shapes and parameter counts as ``compresslib/torch/models.py``.
Family members (``resnet(...)``, ``inverted_residual(...)``, ``build("resnet20_w16")``)
name every layer like the torch module's qualified name (``layer2.0.conv1``,
``blocks.3.depthwise.bn``), so weights pair up by name across frameworks.
Stride-2 3×3 convolutions pad explicitly (``ZeroPadding2D(1)`` then
``"valid"``) so that they see exactly the pixels PyTorch's ``padding=1``
does; BatchNorm uses PyTorch's epsilon (1e-5) and momentum (0.9 ≙ 0.1).

Example:
    >>> from compresslib.keras.models import build
    >>> build("lenet300_100").count_params()
    266610
    >>> m = resnet(depth=20, widths=16)
    >>> m.name, sum(int(v.numpy().size) for v in m.trainable_weights)
    ('resnet20_w16', 272186)
"""
from __future__ import annotations

from typing import Union

import keras
from keras import layers

from compresslib.core import architectures as arch
from compresslib.core.gpt import CHAR_GPT

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


# --------------------------------------------------------------------------- residual families
# Layer names follow the torch modules' qualified names; padding and add layers, which torch
# does not have as modules, are named after the layer they belong to.


def _conv(x, filters: int, kernel: int, stride: int, name: str, depthwise: bool = False):
    """A bias-free conv that sees the pixels of torch's ``padding=kernel // 2``."""
    kwargs = {"use_bias": False, "name": name}
    if kernel > 1 and stride > 1:  # "same" pads stride-2 inputs asymmetrically; torch pads both sides
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if kernel > 1 else "valid"
    if depthwise:
        return layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, **kwargs)(x)
    return layers.Conv2D(filters, kernel, strides=stride, padding=padding, **kwargs)(x)


def _conv_bn_act(x, filters: int, kernel: int, name: str, stride: int = 1, depthwise: bool = False,
                 relu_max: Union[float, None, bool] = None):
    """``{name}.conv``, ``{name}.bn`` and (unless ``relu_max`` is False) ``{name}.relu``, capped at ``relu_max``."""
    x = _bn(f"{name}.bn")(_conv(x, filters, kernel, stride, f"{name}.conv", depthwise))
    if relu_max is False:
        return x
    return layers.ReLU(max_value=relu_max, name=f"{name}.relu")(x)


def _shortcut(x, filters: int, stride: int, name: str):
    if stride == 1 and x.shape[-1] == filters:
        return x
    x = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}.shortcut.0")(x)
    return _bn(f"{name}.shortcut.1")(x)


def residual_block(x, width: int, stride: int = 1, name: str = "block", block: str = "basic", residual: bool = True):
    """A basic or bottleneck block on tensor ``x``, layers named like ``compresslib.torch.models.BasicBlock`` /
    ``Bottleneck`` under ``name``: basic ``conv1-bn1-relu1-conv2-bn2`` (``width`` channels out), bottleneck
    ``conv1 (1×1) … conv3 (1×1, 4·width out)``; plus the shortcut (a 1×1 conv + BN where the shape
    changes) and a final ReLU. ``residual=False``: no shortcut (a block of a plain network).

    Example:
        >>> import keras
        >>> x = keras.Input((28, 28, 16))
        >>> y = residual_block(x, 8, stride=2, name="b", block="bottleneck")
        >>> tuple(y.shape), [l.name for l in keras.Model(x, y).layers if l.weights][:3]
        ((None, 14, 14, 32), ['b.conv1', 'b.bn1', 'b.conv2'])
    """
    if block not in arch.BLOCKS:
        raise ValueError(f"block must be one of {arch.BLOCKS}, got {block!r}")
    if block == "basic":
        out_channels, chain = width, [(width, 3, stride), (width, 3, 1)]
    else:
        out_channels = arch.BOTTLENECK_EXPANSION * width
        chain = [(width, 1, 1), (width, 3, stride), (out_channels, 1, 1)]
    out = x
    for i, (filters, kernel, s) in enumerate(chain, start=1):
        out = _bn(f"{name}.bn{i}")(_conv(out, filters, kernel, s, f"{name}.conv{i}"))
        if i < len(chain):
            out = layers.ReLU(name=f"{name}.relu{i}")(out)
    if residual:
        out = layers.Add(name=f"{name}.add")([out, _shortcut(x, out_channels, stride, name)])
    return layers.ReLU(name=f"{name}.relu{len(chain)}")(out)


def _head(x, num_classes: int, spec: arch.Spec, inputs) -> keras.Model:
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=spec.name)


def _from_resnet_spec(spec: arch.ResNetSpec, num_classes: int) -> keras.Model:
    inputs = keras.Input((spec.input_size, spec.input_size, 1), name="input")
    x = _conv_bn_act(inputs, spec.widths[0], 3, "stem")
    for stage, width in enumerate(spec.widths):
        for i in range(spec.blocks_per_stage):
            stride = 2 if stage > 0 and i == 0 else 1
            x = residual_block(x, width, stride, f"layer{stage + 1}.{i}", spec.block, not spec.plain)
    return _head(x, num_classes, spec, inputs)


def _from_invres_spec(spec: arch.InvertedResidualSpec, num_classes: int) -> keras.Model:
    inputs = keras.Input((spec.input_size, spec.input_size, 1), name="input")
    x = _conv_bn_act(inputs, spec.stem, 3, "stem", relu_max=6.0)
    for i, b in enumerate(spec.blocks()):
        name, out = f"blocks.{i}", x
        if b.expansion != 1:
            out = _conv_bn_act(out, b.hidden, 1, f"{name}.expand", relu_max=6.0)
        out = _conv_bn_act(out, b.hidden, 3, f"{name}.depthwise", stride=b.stride, depthwise=True, relu_max=6.0)
        out = _conv_bn_act(out, b.out_channels, 1, f"{name}.project", relu_max=False)
        x = layers.Add(name=f"{name}.add")([out, x]) if b.residual else out
    x = _conv_bn_act(x, spec.head, 1, "head", relu_max=6.0)
    return _head(x, num_classes, spec, inputs)


def resnet(depth: int = 20, widths: Union[int, tuple[int, int, int]] = 16, block: str = "basic",
           plain: bool = False, num_classes: int = 10, input_size: int = 28) -> keras.Model:
    """A ResNet family member (depth ``6n+2`` basic / ``9n+2`` bottleneck; ``plain=True``: no shortcuts).

    Example:
        >>> tuple(resnet(depth=11, widths=8, block="bottleneck").get_layer("layer2.0.conv3").kernel.shape)
        (1, 1, 16, 64)
    """
    return _from_resnet_spec(arch.resnet_spec(depth, widths, block, plain, input_size), num_classes)


def inverted_residual(width_mult: float = 1.0, num_classes: int = 10, input_size: int = 28) -> keras.Model:
    """An inverted-residual (MobileNetV2-style) family member with channels scaled by ``width_mult``.

    Example:
        >>> tuple(inverted_residual(0.5).get_layer("blocks.1.depthwise.conv").kernel.shape)
        (3, 3, 48, 1)
    """
    return _from_invres_spec(arch.inverted_residual_spec(width_mult, input_size), num_classes)


def from_spec(spec: arch.Spec, num_classes: int = 10) -> keras.Model:
    """A freshly initialised family member from its :mod:`~compresslib.core.architectures` spec."""
    if isinstance(spec, arch.ResNetSpec):
        return _from_resnet_spec(spec, num_classes)
    if isinstance(spec, arch.InvertedResidualSpec):
        return _from_invres_spec(spec, num_classes)
    raise TypeError(f"spec must be a ResNetSpec or InvertedResidualSpec, got {type(spec).__name__}")


_BUILDERS = {"lenet300_100": lenet300_100, "lenet5": lenet5, "resnet8": resnet8, "mlp_wide": mlp_wide,
             "lenet5_caffe": lenet5_caffe}


def build(name: str, num_classes: int = 10) -> keras.Model:
    """A freshly initialised model by ``name``: a reference model (``MODEL_NAMES``), a family member
    (``"resnet20_w16"``, ``"invres_x0.5"``, ...; see :func:`compresslib.core.architectures.parse`) or
    the language model ``"char_gpt"`` (``compresslib.keras.gpt``; ``num_classes`` is then its
    vocabulary, 80, and the default 10 stands for it)."""
    if name == CHAR_GPT.name:
        from compresslib.keras.gpt import char_gpt

        return char_gpt(CHAR_GPT.vocab if num_classes == 10 else num_classes)
    if name in _BUILDERS:
        return _BUILDERS[name](num_classes)
    try:
        spec = arch.parse(name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"name must be one of {MODEL_NAMES} or a family member: {exc}") from None
    return from_spec(spec, num_classes)

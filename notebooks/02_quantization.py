# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Quantization
#
# Storing and computing with fewer bits: 8-bit integers instead of 32-bit floats make a model
# about 4× smaller and, where the CPU has int8 kernels, several times faster.
#
# **What you will learn**
#
# * how a float tensor maps to integers (scale, zero point; per tensor, per channel, per group) and
#   what the error costs at 8, 4 and 2 bits;
# * post-training quantization (PTQ) in PyTorch and Keras: dynamic int8, static int8 calibrated on a
#   few hundred images, weight-only, half precision;
# * quantization-aware training (QAT) with straight-through gradients, and when it matters;
# * which layers are sensitive (a per-layer scan);
# * which paths are really faster *on this CPU*, and which are slower, measured.
#
# The theory in full is on {doc}`../book/quantization`.

# %% tags=["hide-input"]
# On Colab (torch, TensorFlow and Keras 3 come installed) this installs compresslib;
# elsewhere it does nothing.
import sys, subprocess

if "google.colab" in sys.modules:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "compresslib[torch,keras] @ git+https://github.com/compresslib/compresslib",
        ],
        check=True,
    )

# %% tags=["hide-input"]
import os, time, warnings

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")
import numpy as np
import torch  # torch before tensorflow
import tensorflow as tf
import keras
import matplotlib.pyplot as plt
import compresslib as cl
cl.set_threads(None)  # all cores, in every framework and runtime (see the introduction)
from compresslib import notebook as nb
from compresslib.core import quant as cq

np.random.seed(0)
torch.manual_seed(0)
keras.utils.set_random_seed(0)
warnings.filterwarnings("ignore", category=UserWarning)
tf.get_logger().setLevel("ERROR")
nb.use_style()
DEVICE = (
    nb.device()
)  # the int8 paths of this chapter are CPU kernels: the models stay on the CPU
RUNS = 20

CPU = nb.cpu_features()
print(
    f"torch {torch.__version__} | keras {keras.__version__} | {torch.get_num_threads()}"
    f" threads | {os.cpu_count()} cores: {CPU}"
)

# %% tags=["remove-cell"]
nb.glue("cpu", CPU)
nb.glue("cores", os.cpu_count())

# %% [markdown]
# ## The idea
#
# A real value $x$ is represented by an integer $q$ with a **scale** $s$ and a **zero point** $z$:
#
# $$
# q = \operatorname{clip}\!\left(\operatorname{round}\!\left(\frac{x}{s}\right) + z,\; q_\min,\; q_\max\right),
# \qquad \hat x = s\,(q - z).
# $$
#
# For a range $[\alpha, \beta]$ (always stretched to contain 0, so that $0$ is exact), *affine*
# quantization uses $s = (\beta-\alpha)/(q_\max - q_\min)$, $z = q_\min - \operatorname{round}(\alpha/s)$;
# *symmetric* quantization uses $z = 0$ and $s = \max(|\alpha|, |\beta|)/((q_\max-q_\min)/2)$.
# Inside the range the rounding error is at most $s/2$; outside it is clipping error. Choosing
# $[\alpha,\beta]$ is the job of an **observer** (min-max, moving-average min-max, percentile,
# or the range that minimises the mean squared error). One scale per output channel
# (**per channel**) or per group of $g$ input weights (**per group**) follows each channel's own
# range.

# %% [markdown]
# ## From scratch in NumPy
#
# The first fully connected layer of LeNet-5 (400 → 120), quantized with `compresslib.core.quant`.

# %% tags=["nbval-check-output"]
lenet_t = cl.zoo.pretrained("lenet5", framework="torch")
w = lenet_t[7].weight.detach().numpy()  # (120, 400)
qt = cq.quantize_tensor(w, bits=8, symmetric=True, axis=0)  # per output channel
print("integers:", qt.q.dtype, qt.q.shape, "range", qt.q.min(), qt.q.max())
print(
    "scales:",
    qt.scale.shape,
    "max |error| / (scale/2):",
    float((np.abs(qt.dequantize() - w) / (qt.scale[:, None] / 2)).max().round(3)),
)

# %% mystnb={"figure": {"caption": "Top: the weights of LeNet-5's `fc1` and the 16 levels of 4-bit per-tensor quantization. Bottom: signal-to-quantization-noise ratio against bit width for one scale per tensor, per output channel and per group of 16 weights."}, "image": {"alt": "Top: a histogram of fc1 weights, bell-shaped around zero, with 16 evenly spaced vertical lines. Bottom: SQNR in dB falls linearly as bits go from 8 to 2, per group highest, per tensor lowest."}}
bits_list = [8, 6, 4, 3, 2]
sq = {
    (b, g): cq.sqnr_db(
        w, cq.quantize_tensor(w, b, axis=None if g == "tensor" else 0).dequantize()
    )
    for b in bits_list
    for g in ("tensor", "channel")
}
sq_group = {
    b: cq.sqnr_db(w, cq.quantize_tensor(w, b, axis=1, group_size=16).dequantize())
    for b in bits_list
}
fig, ax = plt.subplots(2, 1, figsize=nb.figsize(rows=2))
ax[0].hist(w.ravel(), bins=200, color="0.6")
q4 = cq.quantize_tensor(w, 4)
for level in np.unique(q4.dequantize()):
    ax[0].axvline(level, color=nb.OTHER_COLORS[1], lw=0.8)
ax[0].set_title("fc1 weights and the 16 levels of 4-bit per-tensor quantization")
ax[0].set_xlabel("weight")
for marker, (label, values) in zip(
    "os^",
    [
        ("per tensor", [sq[(b, "tensor")] for b in bits_list]),
        ("per channel", [sq[(b, "channel")] for b in bits_list]),
        ("per group of 16", [sq_group[b] for b in bits_list]),
    ],
):
    ax[1].plot(bits_list, values, marker + "-", label=label)
ax[1].set_xlabel("bits")
ax[1].set_ylabel("SQNR (dB)")
ax[1].legend()
ax[1].set_title("error against bit width")
plt.show()
for b in (8, 4, 2):
    print(
        f"{b} bits: SQNR per tensor {sq[(b,'tensor')]:.1f} dB, per channel"
        f" {sq[(b,'channel')]:.1f} dB, per group {sq_group[b]:.1f} dB"
    )
db_per_bit = (sq[(8, "channel")] - sq[(4, "channel")]) / 4
print(f"per channel, 8 -> 4 bits: {db_per_bit:.1f} dB per bit")

# %% tags=["remove-cell"]
nb.glue("db_per_bit", db_per_bit)

# %% [markdown]
# Each bit buys about {glue:text}`db_per_bit:.1f` dB here (per channel, from 8 to 4 bits; the theory
# says 6 for a uniformly spread signal). Observers matter when the distribution has long tails
# (activations, outliers):

# %%
heavy = np.random.default_rng(0).standard_t(2, size=20000).astype(np.float32)
for obs in cq.OBSERVERS:
    d = cq.quantize_tensor(heavy, 4, observer=obs, percentile=99.9).dequantize()
    print(f"{obs:15s} 4-bit MSE {np.mean((d - heavy) ** 2):.4f}")

# %% [markdown]
# ## PyTorch
#
# `cl.quantize` chooses the fastest path that works on this CPU: FX graph mode static int8 for
# CNNs (it fuses Conv-BN-ReLU and turns the ResNet's residual `+` into a quantized `add_relu` — in
# eager mode that `+` is the known trap, needing `FloatFunctional`), `quantize_dynamic` for Linear
# layers, torchao for 8-bit weight-only. Every row below is measured with `packed=True`, which also
# writes compresslib's packed `.clz` file and records its bytes.
#
# Two models: chapter 1's ResNet8, where convolutions do the work, and a fourth reference model met here
# for the first time, `mlp_wide` — 784 → 1024 → 1024 → 10, fully connected, 1.86 million parameters,
# where two large matrix multiplications do almost all the work: the model family dynamic int8 is made for.
# Its float weights (7.5 MB) are not shipped with the package: the first `cl.zoo.pretrained("mlp_wide")`
# trains it (8 epochs on the MNIST training images, the zoo's recipe) and caches the weights, and every
# later call loads them.

# %%
test_t = cl.datasets.load_mnist("test", layout="torch")
train_t = cl.datasets.load_mnist("train", layout="torch")
resnet_t = cl.zoo.pretrained("resnet8", framework="torch")
mlp_t = cl.zoo.pretrained("mlp_wide", framework="torch")
rows = []


def add(report, model, method, base):
    rows.append(
        dict(
            framework=report.framework,
            model=model,
            method=method,
            bytes=report.file_bytes,
            accuracy=report.accuracy,
            latency_ms=report.latency_ms,
            size_ratio=base.file_bytes / report.file_bytes,
            clz_ratio=(
                base.packed_bytes / report.packed_bytes if report.packed_bytes else None
            ),
            speedup=base.latency_ms / report.latency_ms,
            drop_pt=100 * (base.accuracy - report.accuracy),
        )
    )


base_r = cl.measure(resnet_t, data=test_t, runs=RUNS, packed=True)
q_static = cl.quantize(
    resnet_t, cl.Int8Static(per_channel=True), calibration_data=train_t[0][:256]
)
add(base_r, "resnet8", "fp32", base_r)
add(
    cl.measure(q_static, data=test_t, runs=RUNS, packed=True),
    "resnet8",
    "int8 static",
    base_r,
)
print(
    "FX graph, the residual add:",
    [l for l in q_static.code.splitlines() if "add_relu" in l][0]
    .strip()
    .split(" = ")[1][:60],
    "...",
)

# %%
base_m = cl.measure(mlp_t, data=test_t, runs=RUNS, packed=True)
add(base_m, "mlp_wide", "fp32", base_m)
for label, cfg in [
    ("int8 dynamic", cl.Int8Dynamic()),
    ("weight-only int8 (torchao)", cl.WeightOnly(bits=8)),
    ("weight-only int4 g16", cl.WeightOnly(bits=4, group_size=16)),
    ("bfloat16", cl.BFloat16()),
]:
    add(
        cl.measure(cl.quantize(mlp_t, cfg), data=test_t, runs=RUNS, packed=True),
        "mlp_wide",
        label,
        base_m,
    )

# %% [markdown]
# **Torch's own tool beside ours.** torchao's `Int8DynamicActivationInt8WeightConfig` is the modern
# replacement for `quantize_dynamic`. Its quantized tensors are torchao subclasses that `.clz` does not
# describe, so this row has no `.clz` size. On this CPU ({glue:text}`cpu`) it runs through a fallback
# rather than fused int8 kernels:

# %%
import copy
from torchao.quantization import quantize_, Int8DynamicActivationInt8WeightConfig

ao_mlp = copy.deepcopy(mlp_t)
quantize_(ao_mlp, Int8DynamicActivationInt8WeightConfig())
add(
    cl.measure(ao_mlp, data=test_t, runs=3, warmup=1),
    "mlp_wide",
    "torchao int8 dyn-act",
    base_m,
)
print(f"torchao int8 dynamic-activation: {rows[-1]['speedup']:.2f}x the speed of fp32")

# %% [markdown]
# ### QAT against PTQ at low bit width
#
# Quantization-aware training inserts fake-quantizers: the forward pass sees rounded weights and
# activations, the backward pass treats rounding as the identity (the straight-through estimator).
# LeNet-5 with 4-bit and 2-bit weights and 8-bit activations, one short epoch:

# %%
from compresslib.torch import quantization as tq, train as ttrain

base_l = ttrain.evaluate(lenet_t, test_t)
ptq_acc = {
    b: ttrain.evaluate(tq.fake_quantize_weights(lenet_t, b), test_t) for b in (4, 3, 2)
}
qat_acc = {}
for b in (4, 2):
    p = cl.prepare_qat(lenet_t, cl.QAT(weight_bits=b, activation_bits=8))
    ttrain.fit(p, (train_t[0][:3000], train_t[1][:3000]), epochs=1, lr=5e-4)
    qat_acc[b] = ttrain.evaluate(cl.convert(p), test_t)
print(f"fp32 accuracy {base_l:.4f}")
for b in (4, 2):
    print(f"{b}-bit weights: PTQ {ptq_acc[b]:.4f}   QAT {qat_acc[b]:.4f}")
for b in (4, 2):
    nb.glue(f"ptq{b}", 100 * ptq_acc[b])
    nb.glue(f"qat{b}", 100 * qat_acc[b])

# %% tags=["remove-cell"]
nb.glue("qat_fp32", 100 * base_l)

# %% [markdown]
# At 4 bits PTQ keeps {glue:text}`ptq4:.2f` % (fp32: {glue:text}`qat_fp32:.2f` %) and QAT
# {glue:text}`qat4:.2f` %; at 2 bits PTQ falls to {glue:text}`ptq2:.2f` % and one epoch of QAT reaches
# {glue:text}`qat2:.2f` %.
#
# ### Which layers are sensitive?
#
# Accuracy when only one layer is quantized to 2 bits (all others float):

# %% mystnb={"figure": {"caption": "LeNet-5 with one layer at a time quantized to 2 bits (PyTorch): test accuracy lost against the fp32 model, in points; the bars start at zero."}, "image": {"alt": "Bar chart of the accuracy drop for each of LeNet-5's five layers (conv1, conv2, fc1, fc2, fc3) quantized alone to 2 bits; the layers lose different amounts."}}
sens = tq.sensitivity(lenet_t, test_t, bits=2)
modules = dict(lenet_t.named_modules())
counts, layer_names = {"Conv2d": 0, "Linear": 0}, []
# torch's Sequential names layers by index ("0", "3", ...): name them as the text does
for key in sens:
    kind = type(modules[key]).__name__
    counts[kind] = counts.get(kind, 0) + 1
    layer_names.append(
        f"{'conv' if kind == 'Conv2d' else 'fc'}{counts[kind]}\n(index {key})"
    )
fig, ax = plt.subplots(figsize=nb.figsize())
ax.bar(
    layer_names,
    [100 * (base_l - v) for v in sens.values()],
    color=nb.FRAMEWORK_COLORS["torch"],
)
ax.set_ylabel("accuracy drop (pt)")
ax.set_xlabel("layer quantized to 2 bits")
ax.set_title("LeNet-5: one layer at 2 bits")
plt.show()
print(
    "accuracy with one layer at 2 bits:",
    ", ".join(
        f"{n.splitlines()[0]} {100 * v:.2f} %"
        for n, v in zip(layer_names, sens.values())
    ),
)

# %% [markdown]
# ## Keras
#
# For int8 Keras models compresslib goes through the LiteRT (TFLite) converter: dynamic-range
# (int8 weights) or full-integer, calibrated on a representative dataset. The result is a model-like
# object with `predict`/`__call__` that `measure`, `evaluate` and `cl.save` accept.

# %%
test_k = cl.datasets.load_mnist("test", layout="keras")
train_k = cl.datasets.load_mnist("train", layout="keras")
resnet_k = cl.zoo.pretrained("resnet8", framework="keras")
mlp_k = cl.zoo.pretrained("mlp_wide", framework="keras")
base_rk = cl.measure(resnet_k, data=test_k, runs=RUNS, packed=True)
lite_static = cl.quantize(resnet_k, cl.Int8Static(), calibration_data=train_k[0][:256])
add(base_rk, "resnet8", "fp32", base_rk)
add(
    cl.measure(lite_static, data=test_k, runs=RUNS, packed=True),
    "resnet8",
    "LiteRT int8 static",
    base_rk,
)
base_mk = cl.measure(mlp_k, data=test_k, runs=RUNS, packed=True)
add(base_mk, "mlp_wide", "fp32", base_mk)
add(
    cl.measure(
        cl.quantize(mlp_k, cl.Int8Dynamic()), data=test_k, runs=RUNS, packed=True
    ),
    "mlp_wide",
    "LiteRT int8 dynamic",
    base_mk,
)

# %% [markdown]
# **Keras's own tool beside ours.** Keras 3's `model.quantize("int8")` (what `WeightOnly(bits=8)`
# calls) covers Dense/EinsumDense/Embedding only; it quantizes activations on the fly in Python-level
# ops rather than in a fused int8 kernel.

# %%
add(
    cl.measure(
        cl.quantize(mlp_k, cl.WeightOnly(bits=8)), data=test_k, runs=RUNS, packed=True
    ),
    "mlp_wide",
    "keras model.quantize int8",
    base_mk,
)
print(f"keras model.quantize int8: {rows[-1]['speedup']:.2f}x the speed of fp32")

# %% [markdown]
# Keras 3 has no quantization-aware training (TensorFlow Model Optimization rejects Keras 3 models),
# so compresslib brings its own `FakeQuantDense` and `FakeQuantConv2D` layers with straight-through
# gradients:

# %%
from compresslib.keras import quantization as kq, train as ktrain

lenet_k = cl.zoo.pretrained("lenet5", framework="keras")
base_lk = ktrain.evaluate(lenet_k, test_k)
pk = cl.prepare_qat(lenet_k, cl.QAT(weight_bits=2, activation_bits=8))
print(
    "fake-quantized layers:",
    ", ".join(type(l).__name__ for l in pk.layers if "FakeQuant" in type(l).__name__),
)
ktrain.fit(pk, (train_k[0][:3000], train_k[1][:3000]), epochs=1, lr=5e-4)
print(
    f"accuracy: fp32 {base_lk:.4f}  2-bit PTQ"
    f" {ktrain.evaluate(kq.fake_quantize_weights(lenet_k, 2), test_k):.4f}  2-bit QAT"
    f" {ktrain.evaluate(cl.convert(pk), test_k):.4f}"
)

# %% [markdown]
# ## Side by side
#
# Every row against its own framework's fp32 model, measured in this run (batch 32). Size ratios are
# fp32 bytes over quantized bytes, for the framework's own file and for compresslib's `.clz`.

# %%
from IPython.display import Markdown

by = {(r["framework"], r["model"], r["method"]): r for r in rows}


def side_by_side(framework: str) -> str:
    lines = [
        (
            "| model | method | accuracy % | latency ms | size × (native) | size ×"
            " (.clz) | speedup × | drop pt |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["framework"] == framework:
            clz = "n/a" if r["clz_ratio"] is None else f"{r['clz_ratio']:.2f}"
            lines.append(
                f"| {r['model']} | {r['method']} | {100 * r['accuracy']:.2f} |"
                f" {r['latency_ms']:.2f} | {r['size_ratio']:.2f} | {clz} |"
                f" {r['speedup']:.2f} | {r['drop_pt']:+.2f} |"
            )
    return "\n".join(lines)


Markdown(
    "**PyTorch**\n\n"
    + side_by_side("torch")
    + "\n\n**Keras**\n\n"
    + side_by_side("keras")
)

# %% mystnb={"figure": {"caption": "Every quantized model of this chapter against its fp32 model: left, how many times smaller its file is; right, how many times faster it runs (log scale; left of the line is slower than fp32)."}, "image": {"alt": "Two horizontal bar charts sharing one row per quantized model, PyTorch bars vermillion and Keras bars blue. Left: size ratios between about 2 and 5. Right: speedups on a log scale, some above 1 and some below 1."}}
q_rows = [r for r in rows if r["method"] != "fp32"]
labels = [f"{r['model']}: {r['method']}" for r in q_rows]
colors = [nb.FRAMEWORK_COLORS[r["framework"]] for r in q_rows]
fig, ax = plt.subplots(
    1, 2, figsize=nb.figsize(height=0.3 * len(q_rows) + 1.2), sharey=True
)
ys = np.arange(len(q_rows))[::-1]
ax[0].barh(ys, [r["size_ratio"] for r in q_rows], color=colors)
ax[0].axvline(1, color=nb.NEUTRAL, lw=0.8)
ax[0].set_yticks(ys, labels)
ax[0].set_xlabel("× smaller (native file)")
ax[1].barh(ys, [r["speedup"] for r in q_rows], color=colors)
ax[1].axvline(1, color=nb.NEUTRAL, lw=0.8)
ax[1].set_xscale("log")
ax[1].set_xlabel("× faster (log)")
speeds = [r["speedup"] for r in q_rows]
ticks = nb.ratio_ticks(speeds)
# powers of two, thinned so that their labels do not overprint
ax[1].set_xticks(ticks, [f"{t:g}" for t in ticks])
ax[1].xaxis.set_minor_formatter(plt.NullFormatter())
handles = [
    plt.Rectangle((0, 0), 1, 1, color=nb.FRAMEWORK_COLORS[f])
    for f in ("torch", "keras")
]
fig.legend(handles, ["PyTorch", "Keras"], loc="upper right", ncol=2, frameon=False)
fig.suptitle("Smaller is not always faster", x=0.02, ha="left")
fig.tight_layout(rect=(0, 0, 1, 0.95))
plt.show()

# %%
faster = [
    f"{r['framework']} {r['model']} {r['method']} ({r['speedup']:.2f}×)"
    for r in rows
    if r["method"] != "fp32" and r["speedup"] >= 1.1
]
slower = [
    f"{r['framework']} {r['model']} {r['method']} ({r['speedup']:.2f}×)"
    for r in rows
    if r["method"] != "fp32" and r["speedup"] < 0.9
]
print("faster than fp32 in this run:\n  " + "\n  ".join(faster))
print("slower than fp32 in this run:\n  " + "\n  ".join(slower))
for key, (fw, model, method) in {
    "t_static": ("torch", "resnet8", "int8 static"),
    "t_dyn": ("torch", "mlp_wide", "int8 dynamic"),
    "t_wo8": ("torch", "mlp_wide", "weight-only int8 (torchao)"),
    "t_wo4": ("torch", "mlp_wide", "weight-only int4 g16"),
    "t_bf16": ("torch", "mlp_wide", "bfloat16"),
    "t_ao": ("torch", "mlp_wide", "torchao int8 dyn-act"),
    "k_static": ("keras", "resnet8", "LiteRT int8 static"),
    "k_dyn": ("keras", "mlp_wide", "LiteRT int8 dynamic"),
    "k_quantize": ("keras", "mlp_wide", "keras model.quantize int8"),
}.items():
    r = by[(fw, model, method)]
    nb.glue(f"{key}_speedup", r["speedup"])
    nb.glue(f"{key}_size", r["size_ratio"])
    if r["clz_ratio"] is not None:
        nb.glue(f"{key}_clz", r["clz_ratio"])
    nb.glue(f"{key}_drop", r["drop_pt"])

# %% [markdown]
# Read the table with the machine in mind: {glue:text}`cores` CPU cores ({glue:text}`cpu`), possibly
# shared with other jobs, so single timings wobble (the bench script repeats them with more runs). The
# file size follows the bits, up to the container: `torch.save` writes every small tensor (per-channel
# scales and zero points, each activation's scale) as its own aligned record, so the native int8 file
# of the ResNet8 is only {glue:text}`t_static_size:.2f`× smaller, while compresslib's `.clz` (one blob,
# integers narrowed, exact float64 scales stored as float32) gets to {glue:text}`t_static_clz:.2f`×.
#
# The time follows the *kernels*. Static int8 through real int8 kernels ran at
# {glue:text}`t_static_speedup:.2f`× (PyTorch FX/x86) and {glue:text}`k_static_speedup:.2f`× (LiteRT's
# XNNPACK) the fp32 speed, and dynamic int8 on the Dense-heavy MLP at {glue:text}`t_dyn_speedup:.2f`×
# (PyTorch) and {glue:text}`k_dyn_speedup:.2f`× (LiteRT). Weight-only int8/int4 dequantize before every
# float multiply: they save bytes, and what they cost or save in time depends on how fast that
# dequantization is against the memory it saves ({glue:text}`t_wo8_speedup:.2f`× and
# {glue:text}`t_wo4_speedup:.2f`× the fp32 speed here); torchao's int8 dynamic-activation path
# ({glue:text}`t_ao_speedup:.2f`×) and Keras's `model.quantize` ({glue:text}`k_quantize_speedup:.2f`×)
# lack fused int8 CPU kernels here. Half precision depends on the CPU: where it has native bfloat16
# arithmetic (or oneDNN keeps bfloat16 through a chain of ops) it is faster — here bfloat16 ran at
# {glue:text}`t_bf16_speedup:.2f`× — and where each op converts back to float32 it saves bytes, not time.

# %% [markdown]
# ## On a harder data set: int8 ResNet-20 on Fashion-MNIST, deployed
#
# MNIST cannot tell these modes apart on accuracy: one accuracy on 2,000 digits has a standard error of
# about 0.3 pt, more than most drops above. `bench/fashion.py` quantizes the Fashion-MNIST ResNet-20
# (He et al.'s CIFAR design, 0.27 M parameters) with `Int8Static` in both frameworks, deploys it to ONNX
# Runtime, OpenVINO and LiteRT, measures all 10,000 test images with a Wilson interval for every accuracy
# and McNemar's paired test for every drop, and times every row in interleaved rounds. Its committed
# results (every column on the Results page):

# %%
from IPython.display import display

from compresslib import benchresults

FASHION = benchresults.load_results("fashion")
int8_rows = [r for r in FASHION["rows"] if r["model"] == "fashion_resnet20"]
columns = ("framework",) + benchresults.COMPACT
display(Markdown("\n".join(benchresults.table(int8_rows, columns))))
for t in FASHION.get("targets", []):
    if "int8" in t["target"]:
        print(f"{t['status']}: {t['target']}")
print(benchresults.provenance(FASHION, int8_rows))

# %% tags=["remove-cell"]
by_method = {(r["framework"], r["method"]): r for r in int8_rows}
ov = by_method[("torch", "compresslib int8 → OpenVINO")]
lite = by_method[("keras", "compresslib int8 → LiteRT")]
fx = by_method[("torch", "compresslib int8 (FX x86)")]
nb.glue("fm_ov_drop", f"{ov['accuracy_drop_pt']:.2f}")
nb.glue("fm_ov_verdict", ov["verdict"])
nb.glue("fm_fx_drop", f"{fx['accuracy_drop_pt']:.2f}")
nb.glue("fm_fx_verdict", fx["verdict"])
nb.glue("fm_lite_drop", f"{lite['accuracy_drop_pt']:.2f}")
nb.glue("fm_lite_verdict", lite["verdict"])
nb.glue("fm_ov_speed", f"{ov['speedup']:.1f}")
nb.glue("fm_ov_own", f"{ov['speedup_vs_runtime_fp32']:.2f}")
nb.glue("fm_lite_own", f"{lite['speedup_vs_runtime_fp32']:.2f}")
h2h = FASHION.get("head_to_head") or {}
nb.glue("fm_h2h", f"{h2h.get('speedup', float('nan')):.1f}")

# %% [markdown]
# On 10,000 images the int8 drops are {glue:text}`fm_fx_drop` pt (PyTorch FX, {glue:text}`fm_fx_verdict`),
# {glue:text}`fm_ov_drop` pt (the same file in OpenVINO, {glue:text}`fm_ov_verdict`) and
# {glue:text}`fm_lite_drop` pt (Keras → LiteRT, {glue:text}`fm_lite_verdict`): the paired test, not the
# size of the number, says whether a drop is real. Deployed, the OpenVINO int8 model ran
# {glue:text}`fm_ov_speed`× as fast as torch eager fp32 in the interleaved rounds
# ({glue:text}`fm_h2h`× head to head) — but only {glue:text}`fm_ov_own`× against OpenVINO's own fp32,
# and LiteRT's int8 {glue:text}`fm_lite_own`× against LiteRT's fp32: most of a deployed speed-up is the
# runtime, and chapter 7 separates the two.
#
# ## Summary
#
# * $q = \operatorname{round}(x/s) + z$; per channel and per group follow each slice's range; each bit
#   is worth about 6 dB ({glue:text}`db_per_bit:.1f` dB here).
# * Static int8 needs calibration data and real int8 kernels; then it is both smaller
#   ({glue:text}`t_static_clz:.2f`× as `.clz`) and faster ({glue:text}`t_static_speedup:.2f`× for the
#   PyTorch ResNet8 in this run).
# * At 4 bits PTQ is often still fine on MNIST-sized models; at 2 bits QAT wins back much of what PTQ
#   loses ({glue:text}`ptq2:.2f` % → {glue:text}`qat2:.2f` % for LeNet-5 in PyTorch).
# * The same weights give the same integers in both frameworks (one core, tested for parity).
# * On Fashion-MNIST's 10,000 test images the int8 ResNet-20 in OpenVINO loses {glue:text}`fm_ov_drop` pt
#   ({glue:text}`fm_ov_verdict` by McNemar's test) and runs {glue:text}`fm_ov_speed`× as fast as torch
#   eager fp32.
#
# ## Exercises
#
# 1. Compare the `percentile` and `mse` observers for `Int8Static` on the ResNet: which layers' scales
#    change most?
#
#    <details><summary>Hint</summary>
#
#    Quantize `resnet_t` twice, with `cl.Int8Static(observer="percentile")` and
#    `cl.Int8Static(observer="mse")`, calibrated on `train_t[0][:256]` as in the PyTorch section. The
#    observer chooses the *activation* ranges (weights stay per-channel min-max), so compare the output
#    `scale` of every quantized module in the two models' `named_modules()`. Where do the activations
#    have long tails (the NumPy cell with `cq.OBSERVERS`)?
#
#    </details>
#
# 2. Quantize only the layers the sensitivity scan marks as robust to 2 bits and keep the others at 8.
#
#    <details><summary>Hint</summary>
#
#    `sens = tq.sensitivity(lenet_t, test_t, bits=2)` maps each layer name to the accuracy with that
#    layer alone at 2 bits; call layers within, say, 1 pt of `base_l` robust. Then
#    `tq.fake_quantize_weights(model, bits, layers=[...])` rounds just the named layers: apply it with
#    `2` for the robust ones, again with `8` for the rest, and score with `ttrain.evaluate`. Do the
#    single-layer drops add up?
#
#    </details>
#
# 3. Why does per-group quantization beat per-channel at 2 bits? Plot SQNR against the group size.
#
#    <details><summary>Hint</summary>
#
#    Reuse `w` (fc1, 120 × 400) from the NumPy section: `cq.quantize_tensor(w, 2, axis=1, group_size=g)`
#    for group sizes that divide 400, and `cq.sqnr_db(w, qt.dequantize())`. At 2 bits there are only a
#    few levels: how far apart they are is set by the largest weight in the group. What is a group of
#    400 here? The hidden cell below checks a few points.
#
#    </details>
#
# 4. Measure `WeightOnly(bits=4)` at batch size 1 instead of 32: does the memory saving ever pay in time?
#
#    <details><summary>Hint</summary>
#
#    `cl.measure(cl.quantize(mlp_t, cl.WeightOnly(bits=4, group_size=16)), data=test_t,
#    batch_size=1)` against `cl.measure(mlp_t, data=test_t, batch_size=1)`, in the same run. At batch 1
#    every weight is loaded for one sample: compare the time to read 1.86 M float weights with the time
#    to dequantize them before each multiply.
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 3: SQNR of LeNet-5's fc1 at 2 bits, per output channel and
# per group of g input weights (the same core math as the NumPy section).
import numpy as np
import torch
import compresslib as cl
from compresslib.core import quant as cq

lenet = cl.zoo.pretrained("lenet5", framework="torch")
fc1 = [l for l in lenet.modules() if isinstance(l, torch.nn.Linear)][0]
w1 = fc1.weight.detach().numpy()  # (120, 400)
per_ch = cq.sqnr_db(w1, cq.quantize_tensor(w1, 2, axis=0).dequantize())
groups = (4, 16, 50, 100, 400)
per_g = [
    cq.sqnr_db(w1, cq.quantize_tensor(w1, 2, axis=1, group_size=g).dequantize())
    for g in groups
]
print(f"Exercise 3: fc1 at 2 bits, per channel {per_ch:.2f} dB; per group:")
print(", ".join(f"g={g} {v:.2f} dB" for g, v in zip(groups, per_g)))
# smaller groups, smaller ranges, finer levels; one group of 400 = per channel
assert all(a > b for a, b in zip(per_g, per_g[1:]))
assert per_g[1] > per_ch + 3 and abs(per_g[-1] - per_ch) < 1e-6

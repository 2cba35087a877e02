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
# # Quantization
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

# %%
import os, time, warnings
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")
import numpy as np
import torch                      # torch before tensorflow
import tensorflow as tf
import keras
import matplotlib.pyplot as plt
import compresslib as cl
from compresslib.core import quant as cq
np.random.seed(0); torch.manual_seed(0); keras.utils.set_random_seed(0)
warnings.filterwarnings("ignore", category=UserWarning)
tf.get_logger().setLevel("ERROR")
RUNS = 20
print("torch", torch.__version__, "| keras", keras.__version__, "| threads", torch.get_num_threads())

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

# %%
# NBVAL_CHECK_OUTPUT
lenet_t = cl.zoo.pretrained("lenet5", framework="torch")
w = lenet_t[7].weight.detach().numpy()            # (120, 400)
qt = cq.quantize_tensor(w, bits=8, symmetric=True, axis=0)    # per output channel
print("integers:", qt.q.dtype, qt.q.shape, "range", qt.q.min(), qt.q.max())
print("scales:", qt.scale.shape, "max |error| / (scale/2):",
      float((np.abs(qt.dequantize() - w) / (qt.scale[:, None] / 2)).max().round(3)))

# %%
bits_list = [8, 6, 4, 3, 2]
sq = {(b, g): cq.sqnr_db(w, cq.quantize_tensor(w, b, axis=None if g == "tensor" else 0).dequantize())
      for b in bits_list for g in ("tensor", "channel")}
sq_group = {b: cq.sqnr_db(w, cq.quantize_tensor(w, b, axis=1, group_size=16).dequantize()) for b in bits_list}
fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
ax[0].hist(w.ravel(), bins=200, color="0.6")
q4 = cq.quantize_tensor(w, 4)
for level in np.unique(q4.dequantize()):
    ax[0].axvline(level, color="C3", lw=0.6)
ax[0].set_title("fc1 weights; red: the 16 levels of 4-bit per-tensor"); ax[0].set_xlabel("weight")
ax[1].plot(bits_list, [sq[(b, "tensor")] for b in bits_list], "o-", label="per tensor")
ax[1].plot(bits_list, [sq[(b, "channel")] for b in bits_list], "s-", label="per channel")
ax[1].plot(bits_list, [sq_group[b] for b in bits_list], "^-", label="per group of 16")
ax[1].set_xlabel("bits"); ax[1].set_ylabel("SQNR (dB)"); ax[1].legend(); ax[1].set_title("error against bit width")
plt.tight_layout(); plt.show()
for b in (8, 4, 2):
    print(f"{b} bits: SQNR per tensor {sq[(b,'tensor')]:.1f} dB, per channel {sq[(b,'channel')]:.1f} dB, per group {sq_group[b]:.1f} dB")

# %% [markdown]
# Each bit buys about 6 dB. Observers matter when the distribution has long tails (activations, outliers):

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
# layers, torchao for 8-bit weight-only.

# %%
test_t = cl.datasets.load_mnist("test", layout="torch"); train_t = cl.datasets.load_mnist("train", layout="torch")
resnet_t = cl.zoo.pretrained("resnet8", framework="torch"); mlp_t = cl.zoo.pretrained("mlp_wide", framework="torch")
rows = []
def measure(model, **kwargs):  # also writes compresslib's packed .clz file and records its bytes
    try:
        return cl.measure(model, packed=True, **kwargs)
    except TypeError as exc:      # a model from a framework's own tool that .clz cannot describe
        print("no .clz:", str(exc)[:100])
        return cl.measure(model, **kwargs)
def add(report, model, method, base):
    rows.append(dict(framework=report.framework, model=model, method=method, bytes=report.file_bytes,
                     accuracy=report.accuracy, latency_ms=report.latency_ms,
                     size_ratio=base.file_bytes / report.file_bytes, clz_ratio=base.packed_bytes / report.packed_bytes if report.packed_bytes else None,
                     speedup=base.latency_ms / report.latency_ms, drop_pt=100 * (base.accuracy - report.accuracy)))
base_r = measure(resnet_t, data=test_t, runs=RUNS)
q_static = cl.quantize(resnet_t, cl.Int8Static(per_channel=True), calibration_data=train_t[0][:256])
add(base_r, "resnet8", "fp32", base_r); add(measure(q_static, data=test_t, runs=RUNS), "resnet8", "int8 static", base_r)
print([l for l in q_static.code.splitlines() if "add_relu" in l][0].strip()[:90])

# %%
base_m = measure(mlp_t, data=test_t, runs=RUNS)
add(base_m, "mlp_wide", "fp32", base_m)
for label, cfg in [("int8 dynamic", cl.Int8Dynamic()), ("weight-only int8 (torchao)", cl.WeightOnly(bits=8)),
                   ("weight-only int4 g16", cl.WeightOnly(bits=4, group_size=16)), ("bfloat16", cl.BFloat16())]:
    add(measure(cl.quantize(mlp_t, cfg), data=test_t, runs=RUNS), "mlp_wide", label, base_m)

# %% [markdown]
# **Torch's own tool beside ours.** torchao's `Int8DynamicActivationInt8WeightConfig` is the modern
# replacement for `quantize_dynamic`; on this CPU (AVX2, no VNNI) it runs through a slow fallback.

# %%
import copy
from torchao.quantization import quantize_, Int8DynamicActivationInt8WeightConfig
ao_mlp = copy.deepcopy(mlp_t); quantize_(ao_mlp, Int8DynamicActivationInt8WeightConfig())
add(measure(ao_mlp, data=test_t, runs=3, warmup=1), "mlp_wide", "torchao int8 dyn-act", base_m)

# %% [markdown]
# ### QAT against PTQ at low bit width
#
# Quantization-aware training inserts fake-quantizers: the forward pass sees rounded weights and
# activations, the backward pass treats rounding as the identity (the straight-through estimator).
# LeNet-5 with 4-bit weights and 8-bit activations, one short epoch:

# %%
from compresslib.torch import quantization as tq, train as ttrain
base_l = ttrain.evaluate(lenet_t, test_t)
ptq_acc = {b: ttrain.evaluate(tq.fake_quantize_weights(lenet_t, b), test_t) for b in (4, 3, 2)}
qat_acc = {}
for b in (4, 2):
    p = cl.prepare_qat(lenet_t, cl.QAT(weight_bits=b, activation_bits=8))
    ttrain.fit(p, (train_t[0][:3000], train_t[1][:3000]), epochs=1, lr=5e-4)
    qat_acc[b] = ttrain.evaluate(cl.convert(p), test_t)
print(f"fp32 {base_l:.4f}")
for b in (4, 2):
    print(f"{b}-bit weights: PTQ {ptq_acc[b]:.4f}   QAT {qat_acc[b]:.4f}")

# %% [markdown]
# ### Which layers are sensitive?
#
# Accuracy when only one layer is quantized to 2 bits (all others float):

# %%
sens = tq.sensitivity(lenet_t, test_t, bits=2)
plt.figure(figsize=(6, 2.8)); plt.bar(list(sens), list(sens.values())); plt.axhline(base_l, color="k", ls="--", label="fp32")
plt.ylim(min(sens.values()) - 0.02, 1); plt.ylabel("accuracy"); plt.xlabel("layer (torch name)"); plt.legend()
plt.title("LeNet-5: one layer at 2 bits"); plt.show()

# %% [markdown]
# ## Keras
#
# For int8 Keras models compresslib goes through the LiteRT (TFLite) converter: dynamic-range
# (int8 weights) or full-integer, calibrated on a representative dataset. The result is a model-like
# object with `predict`/`__call__` that `measure`, `evaluate` and `cl.save` accept.

# %%
test_k = cl.datasets.load_mnist("test", layout="keras"); train_k = cl.datasets.load_mnist("train", layout="keras")
resnet_k = cl.zoo.pretrained("resnet8", framework="keras"); mlp_k = cl.zoo.pretrained("mlp_wide", framework="keras")
base_rk = measure(resnet_k, data=test_k, runs=RUNS)
lite_static = cl.quantize(resnet_k, cl.Int8Static(), calibration_data=train_k[0][:256])
add(base_rk, "resnet8", "fp32", base_rk); add(measure(lite_static, data=test_k, runs=RUNS), "resnet8", "LiteRT int8 static", base_rk)
base_mk = measure(mlp_k, data=test_k, runs=RUNS); add(base_mk, "mlp_wide", "fp32", base_mk)
add(measure(cl.quantize(mlp_k, cl.Int8Dynamic()), data=test_k, runs=RUNS), "mlp_wide", "LiteRT int8 dynamic", base_mk)

# %% [markdown]
# **Keras's own tool beside ours.** Keras 3's `model.quantize("int8")` (what `WeightOnly(bits=8)`
# calls) covers Dense/EinsumDense/Embedding only; it quantizes activations on the fly in Python-level
# ops, which on this CPU is slower than the float model.

# %%
add(measure(cl.quantize(mlp_k, cl.WeightOnly(bits=8)), data=test_k, runs=RUNS), "mlp_wide", "keras model.quantize int8", base_mk)

# %% [markdown]
# Keras 3 has no quantization-aware training (TensorFlow Model Optimization rejects Keras 3 models),
# so compresslib brings its own `FakeQuantDense` and `FakeQuantConv2D` layers with straight-through
# gradients:

# %%
from compresslib.keras import quantization as kq, train as ktrain
lenet_k = cl.zoo.pretrained("lenet5", framework="keras")
base_lk = ktrain.evaluate(lenet_k, test_k)
pk = cl.prepare_qat(lenet_k, cl.QAT(weight_bits=2, activation_bits=8))
print([type(l).__name__ for l in pk.layers if "FakeQuant" in type(l).__name__])
ktrain.fit(pk, (train_k[0][:3000], train_k[1][:3000]), epochs=1, lr=5e-4)
print(f"fp32 {base_lk:.4f}  2-bit PTQ {ktrain.evaluate(kq.fake_quantize_weights(lenet_k, 2), test_k):.4f}  "
      f"2-bit QAT {ktrain.evaluate(cl.convert(pk), test_k):.4f}")

# %% [markdown]
# ## Side by side

# %%
from IPython.display import Markdown
head = ("| framework | model | method | bytes (native) | accuracy | latency ms | size ratio (native) | size ratio (.clz) "
        "| speedup | drop (pt) |\n|---|---|---|---|---|---|---|---|---|---|\n")
Markdown(head + "\n".join(f"| {r['framework']} | {r['model']} | {r['method']} | {r['bytes']:,} | {r['accuracy']:.4f} | "
                          f"{r['latency_ms']:.2f} | {r['size_ratio']:.2f}× | {'n/a' if r['clz_ratio'] is None else format(r['clz_ratio'], '.2f') + '×'} | {r['speedup']:.2f}× "
                          f"| {r['drop_pt']:+.2f} |" for r in rows))

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for fw, marker in (("torch", "o"), ("keras", "s")):
    t = [r for r in rows if r["framework"] == fw and r["method"] != "fp32"]
    ax.scatter([r["size_ratio"] for r in t], [r["speedup"] for r in t], marker=marker, label=fw)
    for r in t:
        ax.annotate(f"{r['model']}: {r['method']}", (r["size_ratio"], r["speedup"]), fontsize=7)
ax.axhline(1, color="k", lw=0.5); ax.set_yscale("log"); ax.set_xlabel("file size ratio (fp32 / quantized)")
ax.set_ylabel("speedup (log)"); ax.legend(); ax.set_title("Smaller is not always faster"); plt.show()

# %%
faster = [f"{r['framework']} {r['model']} {r['method']} ({r['speedup']:.2f}×)" for r in rows if r["method"] != "fp32" and r["speedup"] >= 1.1]
slower = [f"{r['framework']} {r['model']} {r['method']} ({r['speedup']:.2f}×)" for r in rows if r["method"] != "fp32" and r["speedup"] < 0.9]
print("faster than fp32 in this run:\n  " + "\n  ".join(faster))
print("slower than fp32 in this run:\n  " + "\n  ".join(slower))

# %% [markdown]
# Read the table with the machine in mind: 2 CPU cores (x86 with AVX-512 VNNI and AMX), possibly
# shared with other jobs, so single timings wobble (the bench script repeats them with more runs). The
# file size follows the bits, up to the container: `torch.save` writes every small tensor (per-channel
# scales and zero points, each activation's scale) as its own aligned record, so the native int8 file
# of a small CNN stays well short of 4×, while compresslib's `.clz` (one blob, integers narrowed,
# exact float64 scales stored as float32) gets to about 4×. The time follows the *kernels*. Static int8 through real int8 kernels (PyTorch FX/x86,
# LiteRT's XNNPACK) and dynamic int8 on the Dense-heavy MLP win on both counts. Weight-only int8/int4
# dequantize before every float multiply, so they save bytes, not time; torchao's int8
# dynamic-activation path and Keras's `model.quantize` lack fused int8 CPU kernels here and run
# behind fp32. Half precision depends on whether the CPU path converts back to float32 for each op.
#
# ## Summary
#
# * $q = \operatorname{round}(x/s) + z$; per channel and per group follow each slice's range; each bit ≈ 6 dB.
# * Static int8 needs calibration data and real int8 kernels; then it is ~4× smaller and faster.
# * At 4 bits PTQ is often still fine on MNIST-sized models; at 2 bits, QAT recovers what PTQ loses.
# * The same weights give the same integers in both frameworks (one core, tested for parity).
#
# ## Exercises
#
# 1. Compare the `percentile` and `mse` observers for `Int8Static` on the ResNet: which layers' scales change most?
# 2. Quantize only the layers the sensitivity scan marks as robust to 2 bits and keep the others at 8.
# 3. Why does per-group quantization beat per-channel at 2 bits? Plot SQNR against the group size.
# 4. Measure `WeightOnly(bits=4)` at batch size 1 instead of 32: does the memory saving ever pay in time?

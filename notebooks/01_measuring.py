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
# # 1. Measuring a model: parameters, bytes, MACs, latency, accuracy
#
# Every later chapter claims that a model became *smaller* or *faster*. This chapter builds the
# measuring stick first, and shows why the four usual numbers — parameters, bytes, MACs and
# latency — are four different things.
#
# **What you will learn**
#
# * how to count parameters and multiply–accumulates (MACs) of a network by hand;
# * how `compresslib.measure` reports parameters, non-zeros, the bytes of the file actually written,
#   MACs per layer, latency (median and spread) and accuracy, for PyTorch and Keras alike;
# * what each framework's own tools report beside it, and where they disagree;
# * why zeros do not shrink a file, why fewer MACs do not always mean less time.

# %%
import os, warnings
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")            # no progress bars in the rendered book
warnings.filterwarnings("ignore")
import numpy as np
import torch                                  # torch before tensorflow
import tensorflow as tf
import keras
import matplotlib.pyplot as plt
import compresslib as cl

torch.manual_seed(0); keras.utils.set_random_seed(0)
print("torch", torch.__version__, "| keras", keras.__version__, "| threads", torch.get_num_threads())

# %% [markdown]
# ## The idea
#
# For a model with layers $\ell = 1..L$:
#
# * **parameters** $P = \sum_\ell |W_\ell| + |b_\ell|$ — how many numbers were learned;
# * **bytes** of the file that is written: roughly $P \cdot \frac{\text{bits}}{8}$ plus the container's
#   headers; compressing the file (gzip) removes redundancy such as runs of zeros;
# * **MACs** per sample: a dense layer $n_\text{in}\to n_\text{out}$ costs $n_\text{in} n_\text{out}$; a
#   convolution with output $H_o \times W_o \times C_o$, kernel $k_h\times k_w$ and $g$ groups costs
#   $H_o W_o C_o \cdot \frac{C_i}{g} k_h k_w$;
# * **latency**: wall-clock time of one batch, the median of many runs after warm-up, reported with
#   its spread (half the inter-quartile range), batch size, thread count and device.
#
# Parameters decide MACs only for dense layers; a convolution reuses each weight at every pixel.
# Latency depends on MACs *and* on memory traffic, kernel quality and per-layer overhead.

# %% [markdown]
# ## From scratch: LeNet-5 counted by hand
#
# LeNet-5 for 28×28 digits: conv 5×5 (1→6, padded) → pool → conv 5×5 (6→16) → pool → 400 → 120 → 84 → 10.

# %%
# (name, kind, in, out, kernel, output H*W)
lenet5_layers = [("conv1", "conv", 1, 6, 5, 28 * 28), ("conv2", "conv", 6, 16, 5, 10 * 10),
                 ("fc1", "dense", 400, 120, 1, 1), ("fc2", "dense", 120, 84, 1, 1), ("fc3", "dense", 84, 10, 1, 1)]
params = {n: i * o * k * k + o for n, _, i, o, k, hw in lenet5_layers}
macs = {n: hw * o * i * k * k for n, _, i, o, k, hw in lenet5_layers}
for n in params:
    print(f"{n:6s} params {params[n]:>6,}  MACs {macs[n]:>8,}")
print(f"total  params {sum(params.values()):>6,}  MACs {sum(macs.values()):>8,}")
# NBVAL_CHECK_OUTPUT

# %%
fig, ax = plt.subplots(figsize=(7, 3))
xs = np.arange(len(params))
ax.bar(xs - 0.2, list(params.values()), 0.4, label="parameters")
ax.bar(xs + 0.2, list(macs.values()), 0.4, label="MACs per sample")
ax.set_xticks(xs, list(params)); ax.set_yscale("log"); ax.legend(); ax.set_title("LeNet-5: where the weights are is not where the work is")
plt.show()

# %% [markdown]
# The convolutions hold 4 % of the parameters and do 87 % of the work; the first dense layer is the
# other way round. Pruning `fc1` shrinks the file; pruning `conv2` is what could make it faster.
#
# ## PyTorch, measured with compresslib
#
# The three reference models come trained from `compresslib.zoo` (weights ship with the package).

# %%
test_torch = cl.datasets.load_mnist("test", layout="torch")
names = ["lenet300_100", "lenet5", "resnet8"]
torch_models = {n: cl.zoo.pretrained(n, framework="torch") for n in names}
torch_reports = [cl.measure(m, data=test_torch, name=n, batch_size=32, runs=100) for n, m in torch_models.items()]
cl.compare(torch_reports)

# %%
r = torch_reports[1]
print(r.params, r.macs, [(l.name, l.macs) for l in r.layers])   # matches the hand count
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# ### PyTorch's own tools beside it
#
# `sum(p.numel())` counts parameters, `torch.save` writes the file, and `torch.utils.benchmark.Timer`
# times a statement with warm-up and statistics. They agree with `measure`:

# %%
import io, torch.utils.benchmark as benchmark
m = torch_models["lenet5"]
buf = io.BytesIO(); torch.save(m.state_dict(), buf)
x = torch.from_numpy(test_torch.x[:32])
with torch.inference_mode():
    t = benchmark.Timer("m(x)", globals={"m": m, "x": x}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=1.0)
print(f"numel: {sum(p.numel() for p in m.parameters()):,} params")
print(f"torch.save to memory: {buf.getbuffer().nbytes:,} bytes (measure wrote a file: {torch_reports[1].file_bytes:,})")
print(f"benchmark.Timer median: {t.median * 1e3:.3f} ms   measure: {torch_reports[1].latency_ms:.3f} ms")

# %% [markdown]
# The two byte counts differ by a few dozen bytes: `torch.save` names the folder inside its zip after
# the file, so the container itself is part of "size". That is why this book always reports the bytes
# of a real file.
#
# ## Keras, measured with compresslib

# %%
test_keras = cl.datasets.load_mnist("test", layout="keras")
keras_models = {n: cl.zoo.pretrained(n, framework="keras") for n in names}
keras_reports = [cl.measure(m, data=test_keras, name=n, batch_size=32, runs=100) for n, m in keras_models.items()]
cl.compare(keras_reports)

# %% [markdown]
# ### Keras's own tools beside it
#
# `model.count_params()` counts *every* weight, including BatchNorm's moving mean and variance, which
# are statistics, not learned parameters. `measure` leaves them out, so both frameworks agree:

# %%
km = keras_models["resnet8"]
tm = torch_models["resnet8"]
print("keras count_params:", km.count_params())
print("measure (keras):   ", keras_reports[2].params)
print("torch numel:       ", sum(p.numel() for p in tm.parameters()))
print("BN moving statistics:", sum(int(np.prod(w.shape)) for w in km.non_trainable_weights))
# NBVAL_CHECK_OUTPUT

# %% [markdown]
# ## Side by side

# %%
all_reports = torch_reports + keras_reports
for r in all_reports:
    r.name = f"{r.name} ({r.framework})"
table = cl.compare(all_reports, baseline=0)
table

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
cl.report.plot_accuracy_vs_bytes(all_reports, ax=axes[0])
axes[0].set_title("accuracy against bytes on disk")
for fw, marker in (("torch", "o"), ("keras", "s")):
    rs = [r for r in all_reports if r.framework == fw]
    axes[1].scatter([r.macs for r in rs], [r.latency_ms for r in rs], marker=marker, label=fw, s=50)
    for r in rs:
        axes[1].annotate(r.name.split(" ")[0], (r.macs, r.latency_ms), fontsize=8, xytext=(4, 4), textcoords="offset points")
axes[1].set_xscale("log"); axes[1].set_yscale("log"); axes[1].set_xlabel("MACs per sample"); axes[1].set_ylabel("latency, batch 32 (ms)")
axes[1].legend(); axes[1].grid(True, alpha=0.3); axes[1].set_title("latency against MACs")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Why parameters ≠ bytes ≠ latency
#
# Three experiments on the PyTorch models make the point:
#
# 1. **Zeros are not free.** Set 90 % of LeNet-300-100's weights to zero: the parameter count and the
#    file do not change; only gzip notices the zeros (and packing, in the pruning chapter, does better).
# 2. **Bits matter.** The same model in float16 has the same parameters and half the bytes.
# 3. **MACs are not time.** Compare the ratio of MACs with the ratio of measured time between two
#    models, and the time of the *same* model (same MACs) in the two frameworks.

# %%
import copy
base = torch_models["lenet300_100"]
masked = copy.deepcopy(base)
with torch.no_grad():
    for p in masked.parameters():
        if p.ndim == 2:
            p.mul_(p.abs() > p.abs().flatten().kthvalue(int(0.9 * p.numel())).values)
half = copy.deepcopy(base).half()
reports = [cl.measure(base, data=test_torch, name="fp32", latency=False),
           cl.measure(masked, data=test_torch, name="90 % zeros", latency=False),
           cl.measure(half, example_input=torch.zeros(1, 1, 28, 28, dtype=torch.float16), name="float16", latency=False)]
for r in reports:
    print(f"{r.name:11s} params {r.params:,}  non-zero {r.nonzero_params:>7,}  file {r.file_bytes:>9,} B  gzip {r.gzip_bytes:>9,} B")

# %%
lat = {(r.framework, r.name.split(" ")[0]): r for r in all_reports}
for a, b in (("lenet5", "lenet300_100"), ("resnet8", "lenet300_100"), ("resnet8", "lenet5")):
    ra, rb = lat[("torch", a)], lat[("torch", b)]
    print(f"torch {a} / {b}: {ra.macs / rb.macs:5.2f}x the MACs, {ra.latency_ms / rb.latency_ms:5.2f}x the time")
for n in names:
    print(f"{n}: same MACs, keras / torch time = {lat[('keras', n)].latency_ms / lat[('torch', n)].latency_ms:.2f}x")

# %% [markdown]
# Time per MAC is far from constant: a few large matrix multiplications (the MLP) run close to the
# CPU's peak, while small convolutions with few channels spend much of their time moving data and
# in per-layer overhead; and the two frameworks' runtimes differ for the very same arithmetic. This
# is why every speedup in this book is a measured ratio, on a stated device and thread count, against
# a baseline measured in the same run.
#
# ### The allocator trap
#
# "The same run" hides one more trap. The cell below starts a fresh Python process, times the
# ResNet8 at batch 32, runs *one* pass at batch 256, and times it again — the same model, the same
# input, nothing else changed.

# %%
import subprocess, sys, textwrap
probe = textwrap.dedent('''
    import time, numpy as np, torch, compresslib as cl
    torch.set_num_threads(1)
    m = cl.zoo.pretrained("resnet8", framework="torch").eval()
    x = torch.from_numpy(cl.datasets.load_mnist("test", layout="torch")[0][:256])
    def median_ms(batch, n=60):
        ts = []
        with torch.inference_mode():
            for _ in range(n):
                t0 = time.perf_counter(); m(batch); ts.append(1000 * (time.perf_counter() - t0))
        return float(np.median(ts[10:]))
    before = median_ms(x[:32])
    with torch.inference_mode():
        m(x)                                   # one pass at batch 256
    after = median_ms(x[:32])
    print(f"batch 32 before a large pass: {before:.2f} ms, after: {after:.2f} ms ({before / after:.2f}x)")
''')
print(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip())

# %% [markdown]
# Until a large block has been freed, glibc's `malloc` returns every activation buffer above its
# mmap threshold to the operating system after each pass, and the next pass page-faults the memory
# in again; freeing a large block raises the thresholds and the buffers are then reused. A script
# that times a baseline first and a compressed model second would credit the compression with the
# difference. `compresslib.measure` therefore starts every PyTorch CPU timing with one pass at 8×
# the batch, which puts every model in the same state. (TensorFlow keeps its own memory pool and
# shows no such effect.)

# %% [markdown]
# ## Summary
#
# * Parameters count learned numbers; bytes count the file; MACs count arithmetic; latency is what a
#   user waits for. Each chapter reports all of them, and claims a speedup only from measured time.
# * `compresslib.measure(model, data=...)` works the same for PyTorch and Keras models and agrees with
#   each framework's own tools (`numel`/`torch.save`/`benchmark.Timer`; `count_params` once BatchNorm
#   statistics are set apart).
# * Zeros in a dense tensor cost full price on disk and in time; fewer bits per number, packing and
#   removing whole channels are what shrink a model — the next chapters.
#
# ## Exercises
#
# 1. Count the parameters and MACs of the ResNet-8 stem and first block by hand and check them against
#    `torch_reports[2].layers`.
# 2. Measure the latency of LeNet-5 at batch sizes 1, 32 and 256. How does the time per sample change, and why?
# 3. Set `torch.set_num_threads(1)` and measure again. Which model loses most from one thread?
# 4. Save LeNet-300-100 with 90 % zeros using `cl.save(masked, "m.clz")` and compare its size with the
#    `.pt` file. (The pruning chapter makes this file much smaller.)

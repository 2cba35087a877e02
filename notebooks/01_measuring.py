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
import os, warnings

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")  # no progress bars in the rendered book
warnings.filterwarnings("ignore")
import numpy as np
import torch  # torch before tensorflow
import tensorflow as tf
import keras
import matplotlib as mpl
import matplotlib.pyplot as plt
import compresslib as cl
cl.set_threads(None)  # all cores, in every framework and runtime (see the introduction)
from compresslib import notebook as nb

nb.use_style()
DEVICE = nb.device()  # "cuda" on a GPU runtime, else "cpu"
torch.manual_seed(0)
keras.utils.set_random_seed(0)
print(
    f"torch {torch.__version__} | keras {keras.__version__} | {torch.get_num_threads()}"
    f" threads | device {DEVICE}"
)

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

# %% tags=["nbval-check-output"]
# (name, kind, in, out, kernel, output H*W)
lenet5_layers = [
    ("conv1", "conv", 1, 6, 5, 28 * 28),
    ("conv2", "conv", 6, 16, 5, 10 * 10),
    ("fc1", "dense", 400, 120, 1, 1),
    ("fc2", "dense", 120, 84, 1, 1),
    ("fc3", "dense", 84, 10, 1, 1),
]
params = {n: i * o * k * k + o for n, _, i, o, k, hw in lenet5_layers}
macs = {n: hw * o * i * k * k for n, _, i, o, k, hw in lenet5_layers}
for n in params:
    print(f"{n:6s} params {params[n]:>6,}  MACs {macs[n]:>8,}")
print(f"total  params {sum(params.values()):>6,}  MACs {sum(macs.values()):>8,}")
conv = [n for n, kind, *_ in lenet5_layers if kind == "conv"]
conv_param_pct = 100 * sum(params[n] for n in conv) / sum(params.values())
conv_mac_pct = 100 * sum(macs[n] for n in conv) / sum(macs.values())
fc1_param_pct, fc1_mac_pct = 100 * params["fc1"] / sum(params.values()), 100 * macs[
    "fc1"
] / sum(macs.values())
print(
    f"convolutions: {conv_param_pct:.1f} % of the parameters, {conv_mac_pct:.1f} % of"
    " the MACs"
)
print(
    f"fc1:          {fc1_param_pct:.1f} % of the parameters, {fc1_mac_pct:.1f} % of the"
    " MACs"
)

# %% tags=["remove-cell"]
nb.glue("conv_param_pct", conv_param_pct)
nb.glue("conv_mac_pct", conv_mac_pct)
nb.glue("fc1_param_pct", fc1_param_pct)
nb.glue("fc1_mac_pct", fc1_mac_pct)

# %% mystnb={"figure": {"caption": "LeNet-5, layer by layer: parameters against MACs per sample (log scale)."}, "image": {"alt": "Bar chart of parameters and MACs per sample for the five layers of LeNet-5 on a log scale: the two convolutions have few parameters and most MACs, fc1 has most parameters."}}
fig, ax = plt.subplots(figsize=nb.figsize())
xs = np.arange(len(params))
ax.bar(xs - 0.2, list(params.values()), 0.4, label="parameters")
ax.bar(xs + 0.2, list(macs.values()), 0.4, label="MACs per sample")
ax.set_xticks(xs, list(params))
ax.set_yscale("log")
ax.legend(loc="upper right")
ax.set_ylabel("count (log scale)")
ax.set_title("LeNet-5: where the weights are is not where the work is")
plt.show()

# %% [markdown]
# The convolutions hold {glue:text}`conv_param_pct:.1f` % of the parameters and do
# {glue:text}`conv_mac_pct:.1f` % of the work; the first dense layer is the other way round
# ({glue:text}`fc1_param_pct:.1f` % of the parameters, {glue:text}`fc1_mac_pct:.1f` % of the MACs).
# Pruning `fc1` shrinks the file; pruning `conv2` is what could make it faster.
#
# ## PyTorch, measured with compresslib
#
# The three reference models come trained from `compresslib.zoo` (weights ship with the package).
# They run on `DEVICE`: the CPU here, a GPU where the runtime has one.

# %%
test_torch = cl.datasets.load_mnist("test", layout="torch")
names = ["lenet300_100", "lenet5", "resnet8"]
torch_models = {n: cl.zoo.pretrained(n, framework="torch").to(DEVICE) for n in names}
torch_reports = [
    cl.measure(m, data=test_torch, name=n, batch_size=32, runs=100)
    for n, m in torch_models.items()
]
cl.compare(torch_reports)

# %% tags=["nbval-check-output"]
r = torch_reports[1]
print(
    f"LeNet-5 measured: {r.params:,} parameters, {r.macs:,} MACs per sample"
)  # matches the hand count
print("MACs per layer:", ", ".join(f"{l.name} {l.macs:,}" for l in r.layers if l.macs))

# %% [markdown]
# ### PyTorch's own tools beside it
#
# `sum(p.numel())` counts parameters, `torch.save` writes the file, and `torch.utils.benchmark.Timer`
# times a statement with warm-up and statistics. They agree with `measure`:

# %%
import io, torch.utils.benchmark as benchmark

m = torch_models["lenet5"]
buf = io.BytesIO()
torch.save(m.state_dict(), buf)
x = torch.from_numpy(test_torch.x[:32]).to(DEVICE)
with torch.inference_mode():
    t = benchmark.Timer(
        "m(x)", globals={"m": m, "x": x}, num_threads=torch.get_num_threads()
    ).blocked_autorange(min_run_time=1.0)
save_gap = torch_reports[1].file_bytes - buf.getbuffer().nbytes
print(f"numel:                {sum(p.numel() for p in m.parameters()):,} params")
print(
    f"torch.save to memory: {buf.getbuffer().nbytes:,} bytes; measure wrote a file of"
    f" {torch_reports[1].file_bytes:,} ({save_gap:+,} bytes)"
)
print(
    f"benchmark.Timer median: {t.median * 1e3:.3f} ms; measure:"
    f" {torch_reports[1].latency_ms:.3f} ms"
)

# %% tags=["remove-cell"]
nb.glue("save_gap", abs(save_gap))

# %% [markdown]
# The two byte counts differ by {glue:text}`save_gap` bytes: `torch.save` names the folder inside its
# zip after the file, so the container itself is part of "size". That is why this book always reports
# the bytes of a real file.
#
# ## Keras, measured with compresslib

# %%
test_keras = cl.datasets.load_mnist("test", layout="keras")
keras_models = {n: cl.zoo.pretrained(n, framework="keras") for n in names}
keras_reports = [
    cl.measure(m, data=test_keras, name=n, batch_size=32, runs=100)
    for n, m in keras_models.items()
]
cl.compare(keras_reports)

# %% [markdown]
# ### Keras's own tools beside it
#
# `model.count_params()` counts *every* weight, including BatchNorm's moving mean and variance, which
# are statistics, not learned parameters. `measure` leaves them out, so both frameworks agree:

# %% tags=["nbval-check-output"]
km = keras_models["resnet8"]
tm = torch_models["resnet8"]
print(f"keras count_params:   {km.count_params():,}")
print(f"measure (keras):      {keras_reports[2].params:,}")
print(f"torch numel:          {sum(p.numel() for p in tm.parameters()):,}")
print(
    "BN moving statistics:"
    f" {sum(int(np.prod(w.shape)) for w in km.non_trainable_weights):,}"
)

# %% [markdown]
# ## Side by side

# %%
all_reports = torch_reports + keras_reports
for r in all_reports:
    r.name = f"{r.name} ({r.framework})"
table = cl.compare(all_reports, baseline=0)
table

# %% mystnb={"figure": {"caption": "The six reference models (three per framework). Top: test accuracy against the bytes of the file on disk. Bottom: measured latency of a batch of 32 against MACs per sample."}, "image": {"alt": "Two scatter plots, PyTorch in vermillion circles and Keras in blue squares. Top: accuracy between 97 and 99 percent against file size from about 0.2 to 1 MB. Bottom: latency against MACs per sample; the ResNet has the most MACs and the highest latency in both frameworks."}}
fig, axes = plt.subplots(2, 1, figsize=nb.figsize(rows=2, height=6.0))
cl.report.plot_accuracy_vs_bytes(all_reports, ax=axes[0], label_points=False)
for r in all_reports:
    axes[0].annotate(
        r.name.split(" ")[0],
        (r.packed_bytes or r.file_bytes, 100 * r.accuracy),
        xytext=(5, -3),
        textcoords="offset points",
        fontsize=nb.MIN_FONT_PT,
    )
axes[0].set_title("accuracy against bytes on disk")
axes[0].margins(x=0.25, y=0.2)
for fw, dy in (("torch", 4), ("keras", -11)):
    rs = [r for r in all_reports if r.framework == fw]
    axes[1].scatter(
        [r.macs for r in rs],
        [r.latency_ms for r in rs],
        s=36,
        zorder=3,
        **nb.framework_style(fw),
    )
    for r in rs:
        axes[1].annotate(
            r.name.split(" ")[0],
            (r.macs, r.latency_ms),
            xytext=(6, dy),
            textcoords="offset points",
            fontsize=nb.MIN_FONT_PT,
        )
axes[1].set_xscale("log")
axes[1].set_yscale("log")
axes[1].margins(x=0.25, y=0.2)
axes[1].yaxis.set_major_locator(mpl.ticker.LogLocator(subs=(1, 2, 5)))
axes[1].yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
axes[1].set_xlabel("MACs per sample (log)")
axes[1].set_ylabel("latency, batch 32 (ms, log)")
axes[1].legend()
axes[1].set_title("latency against MACs")
plt.show()

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
reports = [
    cl.measure(base, data=test_torch, name="fp32", latency=False),
    cl.measure(masked, data=test_torch, name="90 % zeros", latency=False),
    cl.measure(
        half,
        example_input=torch.zeros(1, 1, 28, 28, dtype=torch.float16, device=DEVICE),
        name="float16",
        latency=False,
    ),
]
for r in reports:
    print(
        f"{r.name:11s} params {r.params:,}  non-zero {r.nonzero_params:>7,}  file"
        f" {r.file_bytes:>9,} B  gzip {r.gzip_bytes:>9,} B"
    )

# %% tags=["remove-cell"]
nb.glue("zeros_gzip_ratio", reports[0].gzip_bytes / reports[1].gzip_bytes)
nb.glue("half_file_ratio", reports[0].file_bytes / reports[2].file_bytes)

# %% [markdown]
# With 90 % zeros the file is byte for byte as large; gzip makes it {glue:text}`zeros_gzip_ratio:.1f`×
# smaller than the gzipped dense file. The float16 file is {glue:text}`half_file_ratio:.2f`× smaller
# than the float32 one, with the same parameter count.

# %%
lat = {(r.framework, r.name.split(" ")[0]): r for r in all_reports}
for a, b in (
    ("lenet5", "lenet300_100"),
    ("resnet8", "lenet300_100"),
    ("resnet8", "lenet5"),
):
    ra, rb = lat[("torch", a)], lat[("torch", b)]
    print(
        f"torch {a} / {b}: {ra.macs / rb.macs:5.2f}x the MACs,"
        f" {ra.latency_ms / rb.latency_ms:5.2f}x the time"
    )
for n in names:
    print(
        f"{n}: same MACs, keras / torch time ="
        f" {lat[('keras', n)].latency_ms / lat[('torch', n)].latency_ms:.2f}x"
    )
resnet_vs_mlp = lat[("torch", "resnet8")], lat[("torch", "lenet300_100")]
# arithmetic rate: MACs of a batch of 32 per second
rate = {
    n: lat[("torch", n)].macs * 32 / (lat[("torch", n)].latency_ms / 1e3) / 1e9
    for n in names
}
for n, g in rate.items():
    print(f"torch {n}: {g:.1f} GMAC/s")
mlp_rate, conv_rate = rate["lenet300_100"], rate["resnet8"]
rate_sentence = (
    f"LeNet-300-100's three matrix multiplications run at {mlp_rate:.1f} GMAC/s and the"
    f" ResNet8's convolutions at {conv_rate:.1f} GMAC/s: "
    + (
        "the large matrix multiplications keep the CPU busier per call than the small"
        " convolutions, which spend much of their time moving data and in per-layer"
        " overhead"
        if mlp_rate > conv_rate
        else (
            "the convolutions keep the CPU busier, not the large matrix"
            " multiplications. At batch 32 a dense layer uses each weight 32 times per"
            " call, a convolution once per sample and output pixel, so the convolutions"
            " do far more arithmetic per byte they load"
        )
    )
)

# %% tags=["remove-cell"]
nb.glue("resnet_mlp_mac_ratio", resnet_vs_mlp[0].macs / resnet_vs_mlp[1].macs)
nb.glue(
    "resnet_mlp_time_ratio", resnet_vs_mlp[0].latency_ms / resnet_vs_mlp[1].latency_ms
)
nb.glue("rate_sentence", rate_sentence)

# %% [markdown]
# Time per MAC is far from constant: the ResNet8 does {glue:text}`resnet_mlp_mac_ratio:.0f`× the MACs of
# LeNet-300-100 and takes {glue:text}`resnet_mlp_time_ratio:.1f`× its time. In this run
# {glue:text}`rate_sentence`. And the two frameworks' runtimes differ for the very same arithmetic. This is why every speedup in this book is a measured ratio, on a
# stated device and thread count, against a baseline measured in the same run.
#
# ### The allocator trap
#
# "The same run" hides one more trap. The cell below starts a fresh Python process, times the
# ResNet8 at batch 32 on the CPU, runs *one* pass at batch 256, and times it again — the same model,
# the same input, nothing else changed.

# %%
import subprocess, sys, textwrap

probe = textwrap.dedent("""
    import time, numpy as np, torch, compresslib as cl
    m = cl.zoo.pretrained("resnet8", framework="torch").eval()
    x = torch.from_numpy(cl.datasets.load_mnist("test", layout="torch")[0][:256])
    def median_ms(batch, n=60):
        ts = []
        with torch.inference_mode():
            for _ in range(n):
                t0 = time.perf_counter()
                m(batch)
                ts.append(1000 * (time.perf_counter() - t0))
        return float(np.median(ts[10:]))
    before = median_ms(x[:32])
    with torch.inference_mode():
        m(x)                                   # one pass at batch 256
    after = median_ms(x[:32])
    print(before, after)
""")
before, after = map(
    float,
    subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split(),
)
print(
    f"ResNet8, batch 32, {torch.get_num_threads()} threads: {before:.2f} ms"
    f" before one large pass, {after:.2f} ms after ({before / after:.2f}x)"
)

# %% tags=["remove-cell"]
nb.glue("trap_ratio", before / after)

# %% [markdown]
# In this run the same model took {glue:text}`trap_ratio:.2f`× as long before the large pass as after.
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
#
#    <details><summary>Hint</summary>
#
#    Use the convolution formula of "The idea": every convolution here is 3×3 without bias and keeps
#    the 28×28 size (padding 1, stride 1). The stem maps 1→16 channels, each of the block's two
#    convolutions 16→16. Each BatchNorm adds a scale and a shift per channel (learned; 0 MACs in the
#    report). Print `torch_reports[2].layers[:6]` to compare; the hidden cell below the exercises does
#    the sums.
#
#    </details>
#
# 2. Measure the latency of LeNet-5 at batch sizes 1, 32 and 256. How does the time per sample change,
#    and why?
#
#    <details><summary>Hint</summary>
#
#    Call `cl.measure(torch_models["lenet5"], data=test_torch, batch_size=b)` for each `b` and divide
#    `latency_ms` by `b`. Think of the fixed cost of each call (Python, dispatch, one pass through every
#    layer) against the work that grows with the batch.
#
#    </details>
#
# 3. Set `cl.set_threads(1)` and measure again. Which model loses most from one thread?
#
#    <details><summary>Hint</summary>
#
#    `cl.set_threads(1)` sets one count for PyTorch and TensorFlow (TensorFlow only before its first
#    operation: read the `"tensorflow"` entry it returns, or restart the kernel). Re-run the two
#    `cl.measure` cells, check each report's `threads`, and compare `latency_ms` per model with the
#    earlier reports; `cl.set_threads(None)` restores all cores. Which model has the most MACs to share?
#
#    </details>
#
# 4. Save LeNet-300-100 with 90 % zeros using `cl.save(masked, "m.clz")` and compare its size with the
#    `.pt` file. (The pruning chapter makes this file much smaller.)
#
#    <details><summary>Hint</summary>
#
#    `cl.save` returns the bytes it wrote; `torch.save(masked.state_dict(), "m.pt")` and
#    `os.path.getsize("m.pt")` give the other side (or `reports[1].file_bytes` from the zeros cell).
#    Are the zeros of a plain dense tensor stored any differently?
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 1: the ResNet-8 stem and first block counted by hand,
# against what cl.measure reports layer by layer.
import torch
import compresslib as cl

x1 = torch.from_numpy(cl.datasets.load_mnist("test", layout="torch").x[:1])
rn8 = cl.zoo.pretrained("resnet8", framework="torch")
rep = cl.measure(rn8, example_input=x1, latency=False)
# (c_in, c_out) of the 3x3 convolutions: stem, layer1.conv1, layer1.conv2
convs = [(1, 16), (16, 16), (16, 16)]
hand_params = sum(i * o * 9 + 2 * o for i, o in convs)  # conv + BN scale/shift
hand_macs = sum(28 * 28 * o * i * 9 for i, o in convs)
first = [l for l in rep.layers if l.name.startswith(("stem", "layer1"))]
meas_params = sum(l.params for l in first)
meas_macs = sum(l.macs for l in first)
print(
    f"Exercise 1: stem + first block by hand {hand_params:,} parameters,"
    f" {hand_macs:,} MACs; cl.measure {meas_params:,} parameters,"
    f" {meas_macs:,} MACs"
)
assert (hand_params, hand_macs) == (meas_params, meas_macs) == (4848, 3725568)

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
# # 4. Low-rank decomposition
#
# A trained weight matrix is rarely "full": most of what it does lies in a few directions.
# Low-rank decomposition keeps those directions and replaces one big layer by two or
# three thin ones. Unlike pruning, the result is *dense*, made of ordinary layers, so it is
# smaller **and** can be faster on any hardware without sparse kernels.
#
# **What you will learn**
#
# * the truncated SVD of a dense layer, the Eckart–Young error, and the *cost rule*: a rank that saves nothing is refused;
# * Tucker-2 and CP decompositions of a convolution (1×1 → k×k → 1×1, and the CP factor chain), computed with TensorLy;
# * `cl.decompose(model, cl.SVD(...) | cl.Tucker(...) | cl.CP(...))` in PyTorch and Keras, with a short fine-tune;
# * what the singular-value spectra of real trained layers look like, and accuracy, parameters and measured latency against rank;
# * `cl.fold_batchnorm`, which removes BatchNorm before measuring speed;
# * TensorLy-Torch's own factorized layers beside ours;
# * what Tucker-2 and SVD cost a network with room to lose, the wide ResNet-20 on Fashion-MNIST, judged
#   on 10,000 test images by a paired test.

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
from compresslib.core import lowrank as L
from compresslib.torch import lowrank as torch_lowrank
from compresslib.keras import lowrank as keras_lowrank

nb.use_style()
DEVICE = nb.device()  # fine-tunes run here; models are timed on the CPU
np.random.seed(0)
torch.manual_seed(0)
keras.utils.set_random_seed(0)
warnings.filterwarnings(
    "ignore", category=UserWarning, module="compresslib"
)  # skipped layers are listed below instead
test_t = cl.datasets.load_mnist("test", layout="torch")
test_k = cl.datasets.load_mnist("test", layout="keras")
train_t = cl.datasets.load_mnist("train", layout="torch")
train_k = cl.datasets.load_mnist("train", layout="keras")
CPU = nb.cpu_features()
nb.glue("cpu", CPU)
print(
    f"torch {torch.__version__} | keras {keras.__version__} | {torch.get_num_threads()}"
    f" thread | device {DEVICE} | {CPU}"
)

# %% [markdown]
# ## The idea
#
# A dense layer computes $y = Wx + b$ with $W \in \mathbb{R}^{m\times n}$. Its singular value
# decomposition $W = U\,\mathrm{diag}(s)\,V^\top$ sorts directions by importance
# $s_1 \ge s_2 \ge \dots$. Keeping the first $r$,
#
# $$W \approx W_r = \underbrace{U_r \sqrt{S_r}}_{A\;(m\times r)}\;\underbrace{\sqrt{S_r} V_r^\top}_{B\;(r\times n)},
# \qquad \|W - W_r\|_F = \sqrt{\textstyle\sum_{i>r} s_i^2},$$
#
# is the best rank-$r$ approximation (Eckart and Young, 1936). The layer becomes two layers,
# $x \mapsto Bx \mapsto A(Bx) + b$, costing $r(m+n)$ weights instead of $mn$. That is a saving
# only while $r < \frac{mn}{m+n}$: for a $10\times 1024$ output layer no rank above 9 helps,
# and compresslib refuses such ranks instead of making the layer larger.
#
# A convolution kernel $K \in \mathbb{R}^{C_{out}\times C_{in}\times k\times k}$ is a 4-way
# tensor. **Tucker-2** (Kim et al., 2016) compresses only the two channel modes,
# $K \approx \mathcal{G} \times_0 U_{out} \times_1 U_{in}$ with a core
# $\mathcal{G}\in\mathbb{R}^{R_2\times R_1\times k\times k}$: a 1×1 conv $C_{in}\to R_1$, a
# $k\times k$ conv $R_1 \to R_2$ and a 1×1 conv $R_2\to C_{out}$, costing
# $C_{in}R_1 + R_1R_2k^2 + R_2C_{out}$. **CP** (Lebedev et al., 2015) writes $K$ as a sum of
# $R$ rank-one terms: 1×1 conv $C_{in}\to R$, depthwise $k\times1$, depthwise $1\times k$,
# 1×1 conv $R\to C_{out}$, costing $R(C_{in}+2k+C_{out})$. Ranks are chosen **fixed**, by
# **energy** kept ($\sum_{i\le r}s_i^2 / \sum_i s_i^2$), or by a **parameter budget**.
# The longer derivation is in the book page *Low-rank decomposition*.

# %% [markdown]
# ## From scratch in NumPy
#
# A 256×128 matrix with a decaying spectrum, its truncations, and the cost rule.

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(0)
u, _ = np.linalg.qr(rng.normal(size=(256, 128)))
v, _ = np.linalg.qr(rng.normal(size=(128, 128)))
s_true = np.exp(-np.arange(128) / 12.0)
W = (u * s_true) @ v.T

U, s, Vt = np.linalg.svd(W, full_matrices=False)  # by hand
ranks = [1, 2, 4, 8, 16, 32, 64]
errors = []
for r in ranks:
    A, B = U[:, :r] * np.sqrt(s[:r]), np.sqrt(s[:r])[:, None] * Vt[:r]
    errors.append(np.linalg.norm(W - A @ B) / np.linalg.norm(W))
    # Eckart–Young: the error is exactly the tail of the spectrum
    assert np.isclose(errors[-1], np.sqrt((s[r:] ** 2).sum() / (s**2).sum()))
print("break-even rank for 256x128:", L.max_useful_svd_rank(256, 128))
print("energy 0.99 keeps rank", L.energy_rank(s, 0.99))
for r in (16, 85, 86):
    p = L.plan_svd(W.shape, rank=r)
    print(
        f"rank {r}: {p.params_after:,} weights instead of {p.params_before:,}: "
        + ("accepted" if p.accepted else "refused (" + p.reason + ")")
    )

# %% mystnb={"figure": {"caption": "Top: the singular values of the 256\u00d7128 example. Bottom: the relative truncation error and the weights the two factors keep, as a fraction of the matrix, against the rank."}, "image": {"alt": "Top: singular values decaying exponentially on a log scale. Bottom: the error falls from near 1 to near 0 as the rank grows from 1 to 64, while the fraction of weights kept grows and reaches about 0.75 at rank 64."}}
fig, ax = plt.subplots(2, 1, figsize=nb.figsize(rows=2))
ax[0].semilogy(s, ".-")
ax[0].set(title="singular values", xlabel="index i", ylabel="$s_i$")
ax[1].plot(ranks, errors, "o-", label="relative error $\\|W-W_r\\|/\\|W\\|$")
ax[1].plot(
    ranks,
    [L.svd_cost(256, 128, r) / (256 * 128) for r in ranks],
    "s--",
    label="weights kept / $mn$",
)
ax[1].axhline(1.0, color=nb.NEUTRAL, lw=0.8)
ax[1].set(
    xscale="log", xlabel="rank r", ylabel="fraction", title="truncation error and cost"
)
ax[1].legend(loc="center right")
plt.show()

# %% [markdown]
# The same for a 4-way kernel with TensorLy (`compresslib.core.lowrank.tucker2` and `cp` call
# `tensorly.decomposition.partial_tucker` and `parafac` on the NumPy backend). The kernel below has
# multilinear rank (4, 6) plus a little noise: at ranks (4, 6) Tucker-2 recovers it up to that noise,
# and larger ranks only fit the noise.

# %%
k_true = L.tucker2_reconstruct(
    rng.normal(size=(4, 32)), rng.normal(size=(6, 4, 3, 3)), rng.normal(size=(64, 6))
)
kernel = k_true + 0.05 * rng.normal(size=k_true.shape)
noise_share = L.relative_error(k_true, kernel)
print(f"the noise is {noise_share:.3f} of the kernel (relative Frobenius norm)")
tucker_err = {}
for r1, r2 in [(2, 3), (4, 6), (8, 12)]:
    rec = L.tucker2_reconstruct(*L.tucker2(kernel, (r1, r2)))
    p = L.plan_tucker(kernel.shape, ranks=(r1, r2))
    tucker_err[r1, r2] = L.relative_error(rec, kernel)
    print(
        f"Tucker-2 ranks ({r1},{r2}): weights {p.params_after:5d} of {p.params_before},"
        f" relative error {tucker_err[r1, r2]:.3f}"
    )
for R in (4, 16):
    rec = L.cp_reconstruct(*L.cp(kernel, R))
    print(
        f"CP rank {R:2d}: weights {L.cp_cost(64, 32, 3, 3, R):5d}, relative error"
        f" {L.relative_error(rec, kernel):.3f}"
    )
nb.glue("noise_share", noise_share)
nb.glue("tucker46_err", tucker_err[4, 6])

# %% [markdown]
# ## PyTorch
#
# ### Spectra of real trained layers
#
# LeNet-300-100 and the ResNet8 come trained from the zoo. How much energy do their first
# singular values hold?

# %% [markdown]
# At ranks (4, 6) the relative error is {glue:text}`tucker46_err:.3f`, about the noise's own share of
# the kernel ({glue:text}`noise_share:.3f`).

# %% mystnb={"figure": {"caption": "Energy kept against rank. Top: the two dense layers of LeNet-300-100. Bottom: the output mode of two ResNet8 convolution kernels."}, "image": {"alt": "Cumulative energy curves on a log rank axis rising towards 1; none is a sharp step, so no small rank holds almost all the energy."}} tags=["nbval-check-output"]
lenet_t = cl.zoo.pretrained("lenet300_100", "torch").eval()
resnet_t = cl.zoo.pretrained("resnet8", "torch").eval()
fig, ax = plt.subplots(2, 1, figsize=nb.figsize(rows=2))
for name in ("1", "3"):
    w = lenet_t.get_submodule(name).weight.detach().double().numpy()
    sv = L.singular_values(w)
    ax[0].plot(
        np.cumsum(sv**2) / (sv**2).sum(), label=f"Linear {w.shape[1]}→{w.shape[0]}"
    )
    print(
        f"LeNet-300-100 layer {name} {w.shape}: rank for 90% energy ="
        f" {L.energy_rank(sv, 0.9)}, break-even rank ="
        f" {L.max_useful_svd_rank(*w.shape)}"
    )
    if name == "1":
        energy_frac = L.energy_rank(sv, 0.9) / L.max_useful_svd_rank(*w.shape)
for name in ("layer1.conv1", "layer3.conv2"):
    k = resnet_t.get_submodule(name).weight.detach().double().numpy()
    s_out, s_in = L.singular_values(k)
    ax[1].plot(
        np.cumsum(s_out**2) / (s_out**2).sum(),
        label=f"{name} output mode ({k.shape[0]})",
    )
    print(
        f"ResNet8 {name} {k.shape}: Tucker ranks for 90% energy = "
        f"(R1={L.energy_rank(s_in, 0.9)}, R2={L.energy_rank(s_out, 0.9)})"
    )
for a, t in zip(ax, ("LeNet-300-100 dense layers", "ResNet8 conv kernels")):
    a.set(title=t, xlabel="rank", ylabel="energy kept", xscale="log")
    a.legend()
plt.show()
nb.glue("energy_frac", energy_frac)

# %% [markdown]
# Trained layers are *not* sharply low-rank: 90 % of the energy of LeNet-300-100's first layer needs
# {glue:text}`energy_frac:.0%` of its break-even rank. Energy is a proxy, though; what matters is accuracy, which we measure.
#
# ### SVD of the first Linear layer: accuracy, parameters and latency against rank

# %% tags=["nbval-check-output"]
base_t = cl.measure(lenet_t, data=test_t, runs=20, name="fp32")
sweep_t = []
for r in (8, 16, 32, 64, 128):
    d = cl.decompose(lenet_t, cl.SVD(rank=r), layers=["1"])
    rep = cl.measure(d, data=test_t, runs=20, name=f"svd r={r}")
    sweep_t.append((r, rep))
    print(f"rank {r:3d}: params {rep.params:7,}  accuracy {rep.accuracy:.4f}")
print(f"fp32    : params {base_t.params:7,}  accuracy {base_t.accuracy:.4f}")

# %% mystnb={"figure": {"caption": "PyTorch LeNet-300-100 with its first layer replaced by a rank-r SVD, no fine-tuning: accuracy, parameters and measured latency (batch 32, median with half the inter-quartile range) against the rank; dashed, the fp32 model."}, "image": {"alt": "Three panels against rank 8 to 128 on a log axis: accuracy rises towards the dashed fp32 line, parameters grow linearly below it, latency stays near the fp32 line with error bars."}}
fig, ax = plt.subplots(3, 1, figsize=nb.figsize(height=6.6), sharex=True)
rs = [r for r, _ in sweep_t]
style = dict(color=nb.FRAMEWORK_COLORS["torch"], marker="o")
ax[0].plot(rs, [100 * p.accuracy for _, p in sweep_t], **style)
ax[0].axhline(100 * base_t.accuracy, ls="--", c=nb.NEUTRAL)
ax[0].set(ylabel="accuracy (%)", title="accuracy (no fine-tune)")
ax[1].plot(rs, [p.params for _, p in sweep_t], **style)
ax[1].axhline(base_t.params, ls="--", c=nb.NEUTRAL)
ax[1].set(ylabel="parameters", title="parameters")
ax[2].errorbar(
    rs,
    [p.latency_ms for _, p in sweep_t],
    yerr=[p.latency_spread_ms for _, p in sweep_t],
    capsize=3,
    **style,
)
ax[2].axhline(base_t.latency_ms, ls="--", c=nb.NEUTRAL)
ax[2].set(
    xscale="log",
    xlabel="rank of layer 1",
    ylabel="ms / batch of 32",
    title="measured latency",
)
ax[2].set_xticks(rs, [str(r) for r in rs])
ax[2].minorticks_off()
plt.show()

# %% [markdown]
# ### Tucker-2 on the ResNet8 convolutions, a short fine-tune, then BatchNorm folding
#
# `layers=` takes names or a predicate; here every 3×3 conv except the 1-channel stem. The
# plan shows the rule at work. At ranks (16, 16) the two 16-channel convs of `layer1` are at full
# rank in both modes: nothing would be saved, so they stay as they are. `layer2.conv1` (16→32) is at
# full rank in its input mode, so its input factor is absorbed into the core (Tucker-1): a 3×3 conv
# 16→16, then a 1×1 conv 16→32.
#
# The fine-tune distils from the original model (`teacher=resnet_t`, see the pruning theory page).
# In PyTorch the 1×1 factors are `compresslib.torch.layers.PointwiseConv2d`: an `nn.Conv2d` that,
# at CPU inference on NCHW tensors, runs as one batched matrix product, because oneDNN's 1×1
# convolution spends more time reordering a thin NCHW tensor into its blocked layout than computing.

# %% tags=["nbval-check-output"]
is_3x3 = lambda name, m: m.kernel_size == (3, 3) and m.in_channels > 1
tucker = cl.Tucker(ranks=(16, 16))
for name, p in torch_lowrank.plan(resnet_t, tucker, layers=is_3x3).items():
    print(
        f"{name:14s} {str(p.shape):16s} ranks {p.rank}: {p.params_before:6d} ->"
        f" {p.params_after:5d} weights"
        + ("" if p.accepted else "  (kept: " + p.reason + ")")
    )
d_t = cl.decompose(resnet_t, tucker, layers=is_3x3)
print(d_t.layer2.conv1)
print(d_t.layer3.conv1)

# %%
x_check = torch.as_tensor(test_t[0][:64])
with torch.no_grad():
    rel = ((d_t(x_check) - resnet_t(x_check)).norm() / resnet_t(x_check).norm()).item()
print(f"relative change of the logits before fine-tuning: {rel:.3f}")
t0 = time.perf_counter()
ft_t = torch_lowrank.finetune(
    d_t.to(DEVICE),
    (train_t[0][:4000], train_t[1][:4000]),
    epochs=2,
    lr=1e-3,
    lr_schedule="step",
    teacher=resnet_t,
).cpu()
d_t = d_t.cpu()
print(f"fine-tune: {time.perf_counter() - t0:.0f} s")
reports_t = [
    cl.measure(resnet_t, data=test_t, runs=30, name="fp32"),
    cl.measure(cl.fold_batchnorm(resnet_t), data=test_t, runs=30, name="fold BN"),
    cl.measure(d_t, data=test_t, runs=30, name="tucker (16,16)"),
    cl.measure(
        cl.fold_batchnorm(ft_t), data=test_t, runs=30, name="tucker (16,16) + ft + fold"
    ),
]
nb.glue("t_tucker_mac_ratio", reports_t[0].macs / reports_t[2].macs)
nb.glue("t_tucker_speedup", reports_t[0].latency_ms / reports_t[2].latency_ms)
nb.glue("t_tucker_param_ratio", reports_t[0].params / reports_t[2].params)
cl.report.compare(reports_t)

# %% [markdown]
# ### Where the time goes, and ranks chosen for it
#
# Tucker (16, 16) left the model with {glue:text}`t_tucker_param_ratio:.1f`× fewer parameters and
# {glue:text}`t_tucker_mac_ratio:.1f`× fewer MACs, yet before folding it ran at
# {glue:text}`t_tucker_speedup:.2f`× the speed of fp32 in this run. Time one 3×3 convolution at `layer1`'s size (batch 32, 28×28) for a few channel counts,
# in both frameworks:

# %%
from compresslib.torch.measure import time_model
from compresslib.keras.measure import time_model as keras_time

grid = {}
for c_in in (4, 8, 16):
    for c_out in (4, 8, 16, 32):
        conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False).eval()
        with torch.no_grad():
            t_ms = float(
                np.median(time_model(conv, torch.randn(32, c_in, 28, 28), runs=30))
            )
        kconv = keras.Sequential(
            [keras.Input((28, 28, c_in)), keras.layers.Conv2D(c_out, 3, padding="same")]
        )
        k_ms = float(
            np.median(
                keras_time(
                    kconv, np.random.rand(32, 28, 28, c_in).astype("float32"), runs=30
                )
            )
        )
        grid[c_in, c_out] = (t_ms, k_ms)
print("3×3 conv, batch 32, 28×28: milliseconds (torch / keras)")
print("C_in \\ C_out " + "".join(f"{c:>14d}" for c in (4, 8, 16, 32)))
for c_in in (4, 8, 16):
    print(
        f"{c_in:12d}  "
        + "".join(
            f"{grid[c_in, c][0]:7.2f} /{grid[c_in, c][1]:5.2f}" for c in (4, 8, 16, 32)
        )
    )
for fw, j in (("torch", 0), ("keras", 1)):
    print(
        f"{fw}: C_out 16 vs 4 at C_in 8: {grid[8, 16][j] / grid[8, 4][j]:.2f}x the time"
        " for 4x the MACs; C_in 16 vs 4 at C_out 16:"
        f" {grid[16, 16][j] / grid[4, 16][j]:.2f}x"
    )
    nb.glue(f"{fw}_out_ratio", grid[8, 16][j] / grid[8, 4][j])
    nb.glue(f"{fw}_in_ratio", grid[16, 16][j] / grid[4, 16][j])
nb.glue("grid_min_ms", min(v[0] for v in grid.values()))
nb.glue("grid_max_ms", max(v[0] for v in grid.values()))

# %% [markdown]
# In this run (all cores; {glue:text}`cpu`), going from 4 to 16 *output* channels at 8 input
# channels took PyTorch {glue:text}`torch_out_ratio:.2f`× the time for 4× the MACs, while going from 4
# to 16 *input* channels at 16 outputs took {glue:text}`torch_in_ratio:.2f`×. An AVX-512 CPU computes
# 16 floats per instruction and oneDNN computes output channels in blocks of 16, so a block that is
# partly empty costs about as much as a full one. Keras pays a larger fixed cost per call
# ({glue:text}`keras_out_ratio:.2f`× and {glue:text}`keras_in_ratio:.2f`× for the same two steps), so
# its time grows more slowly than the MACs in both directions. The MAC count sees none of this. For the ResNet8 it
# suggests a small $R_1$ and $R_2 = 16$. On `layer1`'s 16-channel convs $R_2 = 16$ is full rank, so
# they become Tucker-1 (1×1 16→4, then 3×3 4→16); elsewhere Tucker-2 with (4, 16). Other CPUs
# block differently (AVX2 by 8), which is why ranks are chosen by measuring.

# %%
tucker_fast = cl.Tucker(ranks=(4, 16))
d_fast_t = cl.decompose(resnet_t, tucker_fast, layers=is_3x3)
print(d_fast_t.layer1.conv1)
ft_fast_t = torch_lowrank.finetune(
    d_fast_t.to(DEVICE),
    (train_t[0][:4000], train_t[1][:4000]),
    epochs=2,
    lr=1e-3,
    lr_schedule="step",
    teacher=resnet_t,
).cpu()
reports_t.append(
    cl.measure(
        cl.fold_batchnorm(ft_fast_t),
        data=test_t,
        runs=30,
        name="tucker (4,16) + ft + fold",
    )
)
cl.report.compare(reports_t)

# %% [markdown]
# Two epochs on half the digits are a short fine-tune; the bench (`bench/lowrank.py`) gives
# every configuration ten distilled epochs on all 8,000 training digits and times all rows in one
# run.

# %% [markdown]
# Folding BatchNorm (`cl.fold_batchnorm`) writes each BN's scale and shift into the conv
# before it ($W' = sW$, $b' = s(b-\mu)+\beta$, with $s = \gamma/\sqrt{\sigma^2+\epsilon}$): same outputs
# in eval mode, fewer layers to run. Its own part of the speedup is shown on its own row so the
# Tucker part is not over-credited.
#
# ### TensorLy-Torch's factorized layers beside ours
#
# TensorLy-Torch (`tltorch`) replaces a layer by a `FactorizedConv` holding the factors of a
# full Tucker (all four modes) or CP tensor, and runs it either by rebuilding the kernel or as a
# chain of contractions. compresslib instead emits a `FactoredConv2d` whose children are plain
# `nn.Conv2d` layers (Tucker-2) and which keeps the original layer's attributes (`stride`,
# `padding`, a dense `.weight` on demand), so `torch.ao` quantization and `compresslib.save` see
# ordinary convolutions and a model's own code that reads `conv.stride` still runs. Same layer,
# similar budgets:

# %%
import tltorch

conv = resnet_t.layer3.conv1
x = torch.randn(32, conv.in_channels, 14, 14)
ours = torch_lowrank.factor_tucker(conv, (16, 16)).eval()
theirs = tltorch.FactorizedConv.from_conv(
    conv,
    rank=0.3,
    factorization="tucker",
    implementation="factorized",
    decompose_weights=True,
).eval()
rows = []
with torch.no_grad():
    ref = conv(x)
    for label, layer in (
        ("Conv2d", conv),
        ("compresslib Tucker-2 (16,16)", ours),
        ("tltorch Tucker rank 0.3", theirs),
    ):
        t = time_model(layer, x, runs=30)
        rows.append(
            (
                label,
                sum(p.numel() for p in layer.parameters()),
                ((layer(x) - ref).norm() / ref.norm()).item(),
                float(np.median(t)),
            )
        )
for r in rows:
    print(
        f"{r[0]:30s} params {r[1]:6,}  relative output error {r[2]:.3f}  median"
        f" {r[3]:.2f} ms"
    )

# %% [markdown]
# ## Keras
#
# The same verbs on the Keras twins. The functional graph is rebuilt with consecutive
# `Dense` / `Conv2D` / `DepthwiseConv2D` layers, so the result saves as `.keras`, converts to
# LiteRT and quantizes like any model. Keras itself has no decomposition tool; its nearest
# relative, LoRA (`Dense.enable_lora(rank)`), *adds* a rank-$r$ update for fine-tuning and keeps
# the full matrix, so it makes a model larger:

# %% tags=["nbval-check-output"]
lenet_k = cl.zoo.pretrained("lenet300_100", "keras")
lora = keras.models.clone_model(lenet_k)
lora.set_weights(lenet_k.get_weights())
lora.get_layer("fc1").enable_lora(16)
svd_k = cl.decompose(lenet_k, cl.SVD(rank=16), layers=["fc1"])
print(
    f"parameters: fp32 {lenet_k.count_params():,} | LoRA r=16 {lora.count_params():,} |"
    f" SVD r=16 {svd_k.count_params():,}"
)
print("layers after SVD:", ", ".join(l.name for l in svd_k.layers))

# %% tags=["nbval-check-output"]
base_k = cl.measure(lenet_k, data=test_k, runs=20, name="fp32")
sweep_k = []
for r in (8, 16, 32, 64, 128):
    rep = cl.measure(
        cl.decompose(lenet_k, cl.SVD(rank=r), layers=["fc1"]),
        data=test_k,
        runs=20,
        name=f"svd r={r}",
    )
    sweep_k.append((r, rep))
    print(f"rank {r:3d}: params {rep.params:7,}  accuracy {rep.accuracy:.4f}")
print(f"fp32    : params {base_k.params:7,}  accuracy {base_k.accuracy:.4f}")

# %%
resnet_k = cl.zoo.pretrained("resnet8", "keras")
is_3x3_k = (
    lambda name, layer: tuple(layer.kernel_size) == (3, 3) and layer.kernel.shape[2] > 1
)
d_k = cl.decompose(resnet_k, tucker, layers=is_3x3_k)
print(
    "layer3_conv1 became:",
    ", ".join(l.name for l in d_k.layers if l.name.startswith("layer3_conv1")),
)
t0 = time.perf_counter()
ft_k = keras_lowrank.finetune(
    d_k,
    (train_k[0][:4000], train_k[1][:4000]),
    epochs=2,
    lr=1e-3,
    lr_schedule="step",
    teacher=resnet_k,
)
print(f"fine-tune: {time.perf_counter() - t0:.0f} s")
reports_k = [
    cl.measure(resnet_k, data=test_k, runs=30, name="fp32"),
    cl.measure(cl.fold_batchnorm(resnet_k), data=test_k, runs=30, name="fold BN"),
    cl.measure(d_k, data=test_k, runs=30, name="tucker (16,16)"),
    cl.measure(
        cl.fold_batchnorm(ft_k), data=test_k, runs=30, name="tucker (16,16) + ft + fold"
    ),
]
d_fast_k = cl.decompose(resnet_k, tucker_fast, layers=is_3x3_k)
print(
    "layer1_conv1 at ranks (4, 16) became:",
    ", ".join(l.name for l in d_fast_k.layers if l.name.startswith("layer1_conv1")),
)
ft_fast_k = keras_lowrank.finetune(
    d_fast_k,
    (train_k[0][:4000], train_k[1][:4000]),
    epochs=2,
    lr=1e-3,
    lr_schedule="step",
    teacher=resnet_k,
)
reports_k.append(
    cl.measure(
        cl.fold_batchnorm(ft_fast_k),
        data=test_k,
        runs=30,
        name="tucker (4,16) + ft + fold",
    )
)
cl.report.compare(reports_k)

# %% [markdown]
# ## Side by side
#
# Both frameworks, the same configs, each against its own fp32 model measured in this run.
#
# The timings come from a shared 2-core machine, all cores in every framework (see the introduction). Each `Report` records the 1-minute load average while it was timing (`report.load_average`); under load a single row can swing widely, so read speedups from `bench/lowrank.py`, which times every model in one run, rather than from one cell.

# %%
from IPython.display import Markdown

lines = [
    (
        "| framework | model | method | params | accuracy % | latency ms | speedup × |"
        " drop pt |"
    ),
    "|---|---|---|---:|---:|---:|---:|---:|",
]
for fw, base, reps in (
    ("torch", base_t, [p for _, p in sweep_t[1:4:2]]),
    ("keras", base_k, [p for _, p in sweep_k[1:4:2]]),
):
    for rep in [base] + reps:
        lines.append(
            f"| {fw} | LeNet-300-100 | {rep.name} | {rep.params:,} |"
            f" {100 * rep.accuracy:.2f} | {rep.latency_ms:.3f} |"
            f" {base.latency_ms / rep.latency_ms:.2f} |"
            f" {100 * (base.accuracy - rep.accuracy):+.2f} |"
        )
for fw, reps in (("torch", reports_t), ("keras", reports_k)):
    for rep in reps:
        lines.append(
            f"| {fw} | ResNet8 | {rep.name} | {rep.params:,} | {100 * rep.accuracy:.2f}"
            f" | {rep.latency_ms:.3f} | {reps[0].latency_ms / rep.latency_ms:.2f} |"
            f" {100 * (reps[0].accuracy - rep.accuracy):+.2f} |"
        )
for fw, reps in (("t", reports_t), ("k", reports_k)):
    fast = reps[-1]  # tucker (4,16) + ft + fold
    nb.glue(f"{fw}_fast_speedup", reps[0].latency_ms / fast.latency_ms)
    nb.glue(f"{fw}_fast_drop", 100 * (reps[0].accuracy - fast.accuracy))
    # McNemar's paired test on the same 2,000 digits
    nb.glue(f"{fw}_fast_verdict", cl.report.compare(
        [reps[0], fast]).rows[1]["paired_verdict"])
    nb.glue(f"{fw}_fold_speedup", reps[0].latency_ms / reps[1].latency_ms)
Markdown("\n".join(lines))

# %% mystnb={"figure": {"caption": "Top: LeNet-300-100 accuracy against parameters when the first layer is replaced by a rank-r SVD (no fine-tuning); hollow markers, the fp32 models. Bottom: measured speedup of each ResNet8 variant against its framework's fp32 model (all cores)."}, "image": {"alt": "Top: accuracy curves for PyTorch (vermillion circles) and Keras (blue squares) rising with parameters towards the hollow fp32 markers. Bottom: paired horizontal bars per ResNet8 variant, PyTorch vermillion and Keras blue, around the line at 1."}}
fig, ax = plt.subplots(2, 1, figsize=nb.figsize(height=6.4))
for fw, base, sweep in (("torch", base_t, sweep_t), ("keras", base_k, sweep_k)):
    st = nb.framework_style(fw)
    ax[0].plot(
        [p.params for _, p in sweep],
        [100 * p.accuracy for _, p in sweep],
        marker=st["marker"],
        color=st["color"],
        label=f"{st['label']} SVD sweep",
    )
    ax[0].plot(
        [base.params],
        [100 * base.accuracy],
        st["marker"],
        color=st["color"],
        ms=10,
        mfc="none",
        label=f"{st['label']} fp32",
    )
ax[0].set(
    xlabel="parameters",
    ylabel="accuracy (%)",
    title="LeNet-300-100: SVD of layer 1 (no fine-tune)",
)
ax[0].legend(ncols=2)
labels = [r.name for r in reports_t]
ys = np.arange(len(labels))[::-1]
ax[1].barh(
    ys + 0.2,
    [reports_t[0].latency_ms / r.latency_ms for r in reports_t],
    0.4,
    color=nb.FRAMEWORK_COLORS["torch"],
    label="PyTorch",
)
ax[1].barh(
    ys - 0.2,
    [reports_k[0].latency_ms / r.latency_ms for r in reports_k],
    0.4,
    color=nb.FRAMEWORK_COLORS["keras"],
    label="Keras",
)
ax[1].axvline(1, color=nb.NEUTRAL, lw=0.8)
ax[1].set_yticks(ys, labels)
ax[1].set(xlabel="speedup against fp32 (×)", title="ResNet8 measured speedup")
ax[1].legend(loc="upper right")
plt.show()

# %% [markdown]
# ## On a harder data set: the wide ResNet-20 on Fashion-MNIST
#
# On 2,000 MNIST digits one accuracy near 98 % has a standard error of about 0.3 pt, so the ResNet8
# drops above are hard to tell from noise (the comparison tables above give McNemar's p row by row). Fashion-MNIST's
# 10,000 test images (shipped with compresslib; see the introduction) and a network with room to lose make
# trade-offs visible. The network is chapter 3's: the wide ResNet-20 (`fashion_resnet20_wide`,
# 32/64/128 channels), where the 3×3 convolutions do almost all the work.
#
# **Its spectra.** How low-rank are the kernels of a network trained on a harder task? For each
# block-internal 3×3 convolution, the energy its output mode keeps against the share of the mode's rank:

# %% mystnb={"figure": {"caption": "Wide ResNet-20 (Fashion-MNIST): energy kept by the output mode of each block-internal 3\u00d73 convolution against the share of its rank, coloured by stage; dashed, the two energies the decompositions below keep."}, "image": {"alt": "Eighteen cumulative energy curves rising from near 0.1 to 1, green for stage 1, orange for stage 2, pink for stage 3; the wider stages need a smaller share of their rank for the same energy; two dashed horizontal lines at 0.91 and 0.86."}}
import json
from pathlib import Path

from compresslib.core import stats

LOWRANK = Path(cl.__file__).parent / "data" / "results" / "fashion_lowrank"
LR_REC = json.loads((LOWRANK / "record.json").read_text())
# the milder cut (the higher energy) first
LR_KEYS = sorted(LR_REC, key=lambda k: -LR_REC[k]["energy"])
wide_t = cl.zoo.pretrained("fashion_resnet20_wide", framework="torch").eval()
fig, ax = plt.subplots(figsize=nb.figsize(height=3.6))
share_at = {}
for name, m in wide_t.named_modules():
    if not (isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
            and m.in_channels > 1):
        continue
    s_out, _ = L.singular_values(m.weight.detach().double().numpy())
    energy = np.cumsum(s_out**2) / (s_out**2).sum()
    stage = int(name[5])
    ax.plot(np.arange(1, len(s_out) + 1) / len(s_out), energy, lw=1,
            color=nb.OTHER_COLORS[stage - 1],
            label=f"stage {stage} ({m.out_channels} ch.)" if ".0.conv2" in name
            else None)
    for k in LR_KEYS:
        e = LR_REC[k]["energy"]
        share_at.setdefault((k, stage), []).append(
            L.energy_rank(s_out, e) / len(s_out))
for k in LR_KEYS:
    ax.axhline(LR_REC[k]["energy"], ls="--", lw=0.8, c=nb.NEUTRAL)
ax.set(xlabel="share of the output mode's rank", ylabel="energy kept")
ax.legend(loc="lower right", fontsize="small")
plt.show()
fc = wide_t.fc.weight.detach().double().numpy()
fc_sv = L.singular_values(fc)
print(f"fc {fc.shape}: break-even SVD rank {L.max_useful_svd_rank(*fc.shape)};"
      f" ranks kept: " + ", ".join(
          f"{LR_REC[k]['ranks']['fc']} at energy {LR_REC[k]['energy']}"
          for k in LR_KEYS))

# %% tags=["remove-cell"]
e_hi, e_lo = (LR_REC[k] for k in LR_KEYS)
nb.glue("lr_e_hi", f"{e_hi['energy']}")
nb.glue("lr_e_lo", f"{e_lo['energy']}")
for i in (1, 3):
    nb.glue(f"lr_share_s{i}",
            f"{100 * np.mean(share_at[LR_KEYS[0], i]):.0f} %")
nb.glue("lr_fc_rank", f"{e_hi['ranks']['fc']} and {e_lo['ranks']['fc']}")
nb.glue("lr_fc_even", f"{L.max_useful_svd_rank(*fc.shape)}")

# %% [markdown]
# Energy {glue:text}`lr_e_hi` takes on average {glue:text}`lr_share_s1` of the output rank in the first
# stage's 32-channel kernels and {glue:text}`lr_share_s3` in the third stage's 128-channel ones: as on
# MNIST, no layer is sharply low-rank, and the energy threshold gives each layer the rank its own spectrum
# asks for rather than one share for all. SVD applies to the
# one Linear layer, the 10×128 classifier, whose break-even rank is {glue:text}`lr_fc_even`; it keeps
# ranks {glue:text}`lr_fc_rank`, a few hundred weights.
#
# **Decomposed, distilled, folded.** `scripts/fashion_lowrank.py` decomposes the network with
# `cl.Tucker(energy=e)` on every block-internal 3×3 convolution and `cl.SVD(energy=e)` on the classifier,
# for e = {glue:text}`lr_e_hi` and {glue:text}`lr_e_lo` ({glue:text}`lr_hi_macs`× and {glue:text}`lr_lo_macs`× fewer MACs), fine-tunes each with
# the original as teacher by chapter 3's recipe and code (`scripts/fashion_prune.py`'s distillation, one
# thread), folds BatchNorm and ships the result in both frameworks: the Keras twin is Keras's own
# `cl.decompose` of the Keras reference (the same weights give the same ranks) filled factor by factor with
# the fine-tuned weights. Every model was evaluated on all 10,000 test images and judged against the
# original with McNemar's paired test; the table reads the script's record (a fine-tune takes longer than
# a chapter may run). "as cut" is the decomposition before any fine-tuning (BatchNorm not yet folded);
# sizes are of the folded networks, kB of their packed `.clz` files.

# %%
def lr_row(fw, label, e, drop=True, sizes=True):
    """One table line from a cached record entry ``e``."""
    lo, hi = e["interval"]
    acc = f"{100 * e['accuracy']:.2f} ({100 * lo:.1f}–{100 * hi:.1f})"
    cells = [fw, label, acc,
             f"{e['drop_pt']:+.2f} ({e['verdict']}, p {e['mcnemar_p']:.2g})"
             if drop else "",
             f"{e['params'] / 1e3:.0f}k" if sizes else "",
             f"{e['macs'] / 1e6:.1f}M" if sizes else "",
             f"{e['clz_bytes'] / 1e3:.0f}" if sizes else ""]
    return "| " + " | ".join(cells) + " |"


lines = ["| fw | network | accuracy % (95 % CI) | drop pt (paired) | params"
         " | MACs | kB |", "|---|---|---:|---|---:|---:|---:|"]
for fw in ("torch", "keras"):
    o = LR_REC[LR_KEYS[0]]["original"]
    orig = dict(o[fw], macs=o["folded_macs"], params=o["folded_params"],
                clz_bytes=o["folded_clz_bytes"][fw])
    lines.append(lr_row(fw, "original (folded)", orig, drop=False))
    for k in LR_KEYS:
        rec = LR_REC[k]
        lines.append(lr_row(fw, f"e={rec['energy']} as cut",
                            rec["before_finetune"][fw], sizes=False))
        lines.append(lr_row(
            fw, f"e={rec['energy']} + {rec['epochs']} ep", rec[fw]))
Markdown("\n".join(lines))

# %% [markdown]
# The cache is a claim too: load the shipped PyTorch file of the stronger cut, run it on the first 1,000
# test images here, and check that every image's verdict matches the script's; then check the Keras file
# against it on the same images.

# %%
xf, yf = cl.datasets.load_fashion_mnist("test", layout="torch")
xfk, _ = cl.datasets.load_fashion_mnist("test", layout="keras")
rec = LR_REC[LR_KEYS[-1]]
live_t = cl.load(LOWRANK / f"torch_e{rec['energy']}.clz").eval()
live_k = cl.load(LOWRANK / f"keras_e{rec['energy']}.clz")
with torch.inference_mode():
    pred_t = np.concatenate(
        [live_t(torch.from_numpy(xf[i:i + 500])).argmax(1).numpy()
         for i in (0, 500)])
pred_k = np.concatenate(
    [np.asarray(live_k(xfk[i:i + 500])).argmax(1) for i in (0, 500)])
for fw, pred in (("torch", pred_t), ("keras", pred_k)):
    bits = stats.unpack_correctness(rec[fw]["correct"], rec[fw]["total"])
    live = pred == yf[:1000]
    assert (live == bits[:1000]).all(), f"{fw}: the cache no longer matches"
    print(f"{fw} e={rec['energy']}, first 1,000 images: {int(live.sum())}"
          f" right live, {int(bits[:1000].sum())} in the cache")
assert live_t.fc[0].out_features == rec["ranks"]["fc"]  # the SVD factor's rank

# %% tags=["remove-cell"]
def lr_glue(tag, rec, fw):
    """Glue one decomposition's figures: accuracy, drop, test, ratios."""
    e, o = rec[fw], rec["original"]
    nb.glue(f"lr_{tag}_{fw}_drop", f"{e['drop_pt']:+.2f}")
    lo, hi = e["drop_interval_pt"]
    nb.glue(f"lr_{tag}_{fw}_ci", f"{lo:+.2f} to {hi:+.2f}")
    nb.glue(f"lr_{tag}_{fw}_verdict", e["verdict"])
    nb.glue(f"lr_{tag}_{fw}_p", f"{e['mcnemar_p']:.2g}")
    b = rec["before_finetune"][fw]
    nb.glue(f"lr_{tag}_{fw}_before", f"{100 * b['accuracy']:.2f} %")
    ratio = o["folded_clz_bytes"][fw] / e["clz_bytes"]
    nb.glue(f"lr_{tag}_{fw}_bytes", f"{ratio:.1f}")


for tag, k in (("hi", LR_KEYS[0]), ("lo", LR_KEYS[-1])):
    r = LR_REC[k]
    for fw in ("torch", "keras"):
        lr_glue(tag, r, fw)
    o = r["original"]
    nb.glue(f"lr_{tag}_macs", f"{o['folded_macs'] / r['torch']['macs']:.1f}")
    nb.glue(f"lr_{tag}_params",
            f"{o['folded_params'] / r['torch']['params']:.1f}")
    nb.glue(f"lr_{tag}_epochs", f"{r['epochs']}")
orig_t = e_hi["original"]["torch"]
nb.glue("lr_orig_acc", stats.format_accuracy(orig_t["correct_count"],
                                             orig_t["total"]))

# %% [markdown]
# The original scores {glue:text}`lr_orig_acc`. Right after decomposition, before any fine-tuning, the
# milder cut (e = {glue:text}`lr_e_hi`) scores {glue:text}`lr_hi_torch_before` and the stronger one
# {glue:text}`lr_lo_torch_before`: truncation alone costs accuracy, as the MNIST models showed.
# After {glue:text}`lr_hi_epochs` epoch of distillation, e = {glue:text}`lr_e_hi` ({glue:text}`lr_hi_macs`×
# fewer MACs, {glue:text}`lr_hi_params`× fewer parameters, a .clz file {glue:text}`lr_hi_torch_bytes`×
# smaller) ends {glue:text}`lr_hi_torch_drop` pt from the original in PyTorch (a positive drop is a loss;
# 95 % interval {glue:text}`lr_hi_torch_ci`, McNemar p = {glue:text}`lr_hi_torch_p`):
# {glue:text}`lr_hi_torch_verdict`; in Keras, which runs the same weights,
# {glue:text}`lr_hi_keras_drop` pt, {glue:text}`lr_hi_keras_verdict`. The stronger cut,
# e = {glue:text}`lr_e_lo` ({glue:text}`lr_lo_macs`× fewer MACs), ends {glue:text}`lr_lo_torch_drop` pt
# away ({glue:text}`lr_lo_torch_ci`, p = {glue:text}`lr_lo_torch_p`): {glue:text}`lr_lo_torch_verdict`
# (Keras: {glue:text}`lr_lo_keras_drop` pt, {glue:text}`lr_lo_keras_verdict`).
#
# MACs are not time (the 3×3 grid above showed why), and a notebook kernel on a shared machine is no
# place to time them. `bench/fashion.py --sections lowrank` times each decomposition head to head (single
# calls alternated) against the BN-folded original in both frameworks, beside chapter 3's pruned network;
# the next cell reads what it wrote (`bench/results/fashion.json`, also on the Results page).

# %%
from compresslib.benchresults import load_results

bench = load_results("fashion")
lines = ["| model | MACs ÷ | drop pt | torch × | Keras × | load avg |",
         "|---|---:|---:|---:|---:|---:|"]
wide_rows = [r for r in bench["rows"] if r["model"] == "fashion_resnet20_wide"
             and r.get("head_to_head_speedup") and r["method"] != "wide, BN folded"]
for method in dict.fromkeys(r["method"] for r in wide_rows):
    by = {r["framework"]: r for r in wide_rows if r["method"] == method}
    t, k = by["torch"], by["keras"]
    short = method.replace(", BN folded", "").replace(" distilled", "")
    macs = f"{t['macs_ratio']:.1f}" if t.get("macs_ratio") else ""
    drop = f"{t['accuracy_drop_pt']:+.2f} ({t['verdict']})"
    lines.append(f"| {short} | {macs} | {drop} | {t['head_to_head_speedup']:.2f} | "
                 f"{k['head_to_head_speedup']:.2f} | {t['load_average']:.1f} |")
    tag = "lr" + method.split("e=")[1][:4].replace(".", "") if "e=" in method else None
    if tag:
        nb.glue(f"{tag}_t_x", f"{t['head_to_head_speedup']:.2f}")
        nb.glue(f"{tag}_k_x", f"{k['head_to_head_speedup']:.2f}")
        nb.glue(f"{tag}_load", f"{t['load_average']:.1f}")
    elif method.startswith("Structured(0.5)"):
        nb.glue("pr05_t_x", f"{t['head_to_head_speedup']:.2f}")
        nb.glue("pr05_macs", f"{t['macs_ratio']:.1f}" if t.get("macs_ratio") else "")
Markdown("\n".join(lines))

# %% [markdown]
# Head to head, e = 0.91 runs {glue:text}`lr091_t_x`× the original's speed in PyTorch and
# {glue:text}`lr091_k_x`× in Keras; e = 0.86 {glue:text}`lr086_t_x`× and {glue:text}`lr086_k_x`×
# (that run's load average was {glue:text}`lr086_load`: another bench ran beside it at the lowest
# priority). Chapter 3's `Structured(0.5)` reached {glue:text}`pr05_t_x`× in PyTorch at the same accuracy
# bound. Low rank removes MACs, but each 3×3 conv becomes a chain of three, and on this CPU the chain's
# per-operator costs eat much of the saving: at equal accuracy, structured pruning is the faster cut here.

# %% [markdown]
# ## Summary
#
# * A rank-$r$ factorization of an $m\times n$ layer costs $r(m+n)$ weights; below the break-even
#   rank $mn/(m+n)$ it saves, above it it grows the layer, and `cl.decompose` refuses such ranks
#   and names the layer in a warning.
# * The truncated SVD is the best rank-$r$ approximation; its error is the tail of the spectrum.
#   Trained layers keep most of their accuracy well below full rank, and a short fine-tune
#   (distilled from the original) recovers much of the rest: at ranks (4, 16), fine-tuned and folded,
#   the ResNet8's drop was {glue:text}`t_fast_drop:.2f` (PyTorch) and {glue:text}`k_fast_drop:.2f` (Keras)
#   points — {glue:text}`t_fast_verdict` and {glue:text}`k_fast_verdict` by McNemar's test on 2,000
#   digits — and it ran at {glue:text}`t_fast_speedup:.2f`× and {glue:text}`k_fast_speedup:.2f`× the fp32
#   speed in this run.
# * On Fashion-MNIST's 10,000 test images the wide ResNet-20, decomposed by energy
#   ({glue:text}`lr_hi_macs`× and {glue:text}`lr_lo_macs`× fewer MACs), distilled for
#   {glue:text}`lr_hi_epochs` epoch and folded, ends {glue:text}`lr_hi_torch_drop` and
#   {glue:text}`lr_lo_torch_drop` pt from the original: {glue:text}`lr_hi_torch_verdict` and
#   {glue:text}`lr_lo_torch_verdict` by McNemar's test (Keras, the same weights:
#   {glue:text}`lr_hi_keras_drop` and {glue:text}`lr_lo_keras_drop` pt). Their speed is
#   `bench/fashion.py`'s to measure, head to head.
# * Tucker-2 turns a $k\times k$ conv into 1×1 → $k\times k$ → 1×1 ordinary convs; CP into a
#   1×1 → depthwise → depthwise → 1×1 chain; a mode kept at full rank is absorbed (Tucker-1, one
#   conv fewer). Fewer MACs do not guarantee less time on a CPU: small layers are dominated by
#   per-layer overhead and by the kernel's channel blocking (here, output channels come in blocks
#   of 16), so choose ranks by measuring, and fold BatchNorm first.
# * Both frameworks share the NumPy/TensorLy core, so the same weights give the same ranks and
#   factors in PyTorch and Keras.
#
# ## Exercises
#
# 1. Choose ranks by `cl.SVD(energy=0.9)` instead of a fixed rank. Which layers get the most rank, and why?
#
#    <details><summary>Hint</summary>
#
#    `torch_lowrank.plan(lenet_t, cl.SVD(energy=0.9))` shows the rank each Linear layer would get,
#    and whether it is accepted, before `cl.decompose` changes anything. Set each rank against the
#    layer's break-even rank (`L.max_useful_svd_rank(*w.shape)`) and its spectrum in the energy plot:
#    the rank that keeps 90 % of the energy is not the same fraction of every layer. The hidden cell
#    below checks the plan against a hand-made SVD.
#
#    </details>
#
# 2. Decompose the ResNet8 with `cl.CP(rank=8)` and compare accuracy and latency with Tucker-2 at a
#    similar parameter count.
#
#    <details><summary>Hint</summary>
#
#    `torch_lowrank.plan(resnet_t, cl.CP(rank=8), layers=is_3x3)` gives `params_after` per layer; pick
#    `cl.Tucker(ranks=...)` with about the same total. Decompose both with `layers=is_3x3`, fine-tune
#    each with `torch_lowrank.finetune(..., teacher=resnet_t)` as above, and measure both in one run.
#    CP's depthwise convolutions have few MACs: are they fast kernels?
#
#    </details>
#
# 3. Apply `cl.decompose` and then `cl.quantize(..., cl.Int8Dynamic())` to MLP-wide: do the savings
#    multiply?
#
#    <details><summary>Hint</summary>
#
#    `mlp = cl.zoo.pretrained("mlp_wide", "torch")` (trained on first use, as in chapter 2), then
#    `d = cl.decompose(mlp, cl.SVD(rank=...))` and `q = cl.quantize(d, cl.Int8Dynamic())`. Measure
#    all of `mlp`, `d`, `cl.quantize(mlp, cl.Int8Dynamic())` and `q` with `packed=True`, and compare the
#    ratios of `file_bytes` and `latency_ms`: is the size of `q` the product of the two ratios, and
#    the speed?
#
#    </details>
#
# 4. Find the smallest Tucker ranks for which one epoch of fine-tuning keeps the ResNet8 within 1 point
#    of fp32.
#
#    <details><summary>Hint</summary>
#
#    Loop over a few pairs `cl.Tucker(ranks=(r1, r2))` (or `cl.Tucker(energy=e)`), with
#    `torch_lowrank.finetune(..., epochs=1, teacher=resnet_t)` and `cl.measure(..., latency=False)`
#    for the accuracy; compare with `reports_t[0].accuracy`. A 1-point difference on 2,000 test digits
#    is only a few standard errors (chapter 2): look at more than one seed.
#
#    </details>
#
# 5. Run the side-by-side cells with `cl.set_threads(1)`: does the speedup of the factored model
#    change?
#
#    <details><summary>Hint</summary>
#
#    `cl.set_threads(1)` changes PyTorch at once; TensorFlow fixes its thread pools at its first
#    operation, so for Keras put `cl.set_threads(1)` in the import cell and restart the kernel. Compare
#    `reports_t[0].latency_ms / r.latency_ms` with the run on all cores (each report's `threads` says
#    which). Which layers had too little work to share among the threads?
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 1: the ranks cl.SVD(energy=0.9) gives the three Linear
# layers of LeNet-300-100, against a plain NumPy SVD of each weight.
import numpy as np
import compresslib as cl
from compresslib.core import lowrank as L
from compresslib.torch import lowrank as torch_lowrank

mlp = cl.zoo.pretrained("lenet300_100", "torch").eval()
plans = torch_lowrank.plan(mlp, cl.SVD(energy=0.9))
print("Exercise 1: ranks for 90 % of the energy (break-even rank):")
for name, p in plans.items():
    w = mlp.get_submodule(name).weight.detach().double().numpy()
    sv = np.linalg.svd(w, compute_uv=False)
    by_hand = int(np.searchsorted(np.cumsum(sv**2) / (sv**2).sum(), 0.9)) + 1
    even = L.max_useful_svd_rank(*w.shape)
    print(
        f"  layer {name} {w.shape}: rank {p.rank} ({even}),"
        f" {p.params_after:,} of {p.params_before:,} weights"
    )
    assert p.rank == by_hand and p.accepted
ranks = [p.rank for p in plans.values()]
assert ranks == sorted(ranks, reverse=True)  # the widest layer gets the most

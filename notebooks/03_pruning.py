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
# # 3. Pruning that really shrinks the model
#
# A pruned network has many weights set to zero, or whole channels removed. The two most common
# complaints about pruning tools are that the pruned model is **exactly as large on disk and exactly
# as slow** as before (masks only), and that **structured pruning breaks on residual connections**.
# This chapter fixes both, in PyTorch and in Keras 3.
#
# **What you will learn**
#
# * magnitude masks per layer and global, N:M (2:4) masks, and the gradual schedule of Zhu & Gupta (2017);
# * why zeros alone change neither bytes nor latency, and how a **bitmask** or **CSR** encoding makes the
#   file shrink (and where each one breaks even);
# * `cl.prune(model, cl.Magnitude | cl.NM | cl.Structured)` in both frameworks, the gradual-pruning hook
#   (PyTorch) and callback (Keras);
# * structured pruning that **physically removes channels** while keeping residual additions consistent:
#   through Torch-Pruning's dependency graph in PyTorch, and through compresslib's own graph walk in Keras 3;
# * a per-layer sensitivity scan and a parameters-per-layer chart.

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
import torch.nn.utils.prune
import tensorflow as tf
import keras
import matplotlib.pyplot as plt
import compresslib as cl
cl.set_threads(None)  # all cores, in every framework and runtime (see the introduction)
from compresslib import notebook as nb
from compresslib.core import masks, packing
from compresslib.core.schedules import PolynomialDecay

nb.use_style()
DEVICE = nb.device()  # fine-tunes run here; models are measured on the CPU
torch.manual_seed(0)
keras.utils.set_random_seed(0)
np.random.seed(0)
tmp = tempfile.mkdtemp()
print(
    f"torch {torch.__version__} | keras {keras.__version__} | {torch.get_num_threads()}"
    f" threads | device {DEVICE}"
)

# %% [markdown]
# ## The idea
#
# **Unstructured magnitude pruning** keeps the weights of largest magnitude. For a target sparsity $s$ and a
# weight tensor with $n$ entries, the mask is
#
# $$m_i = \mathbb{1}\big[\,|w_i| \ge \tau\,\big], \qquad \tau = \text{the } \lceil s\,n \rceil\text{-th smallest } |w_i| ,$$
#
# computed per layer (`scope="layer"`) or with one threshold over all layers (`scope="global"`, which
# prunes the big, redundant layers harder). **N:M sparsity** keeps the $N$ largest of every $M$ consecutive
# weights of a row (2:4 is what sparse tensor cores accelerate). **Gradual pruning** (Zhu & Gupta 2017,
# *To prune, or not to prune*) raises the sparsity during fine-tuning,
#
# $$s_t = s_f + (s_i - s_f)\left(1 - \frac{t - t_0}{n\,\Delta t}\right)^3 ,$$
#
# recomputing masks every $\Delta t$ steps and re-applying them after every optimiser step.
#
# **Zeros are not bytes.** A dense fp32 tensor of $n$ values costs $4n$ bytes whatever it holds. Stored
# sparse, with $z = (1-s)\,n$ non-zeros and $r$ rows:
#
# $$\text{bitmask: } \tfrac{n}{8} + 4z, \qquad \text{CSR (int32 indices): } 8z + 4(r+1).$$
#
# The bitmask beats dense as soon as $s > 1/32 \approx 3\,\%$; CSR only above $s = 50\,\%$, and it beats the
# bitmask only when $z < n/32$. compresslib picks the smallest per tensor when it saves a `.clz` file.
#
# **Structured pruning** removes whole output channels (or neurons): a layer $C_\text{in}\to C_\text{out}$ becomes
# $C_\text{in}'\to C_\text{out}'$, so parameters, MACs, bytes *and* time fall with dense kernels. Channels
# that meet at an addition $y = F(x) + x$ must be removed together from both branches; that is the
# dependency graph.

# %% [markdown]
# ## From scratch in NumPy
#
# A 24×24 weight matrix, its magnitude mask at 75 %, and a 2:4 mask. The threshold rule written out by hand
# gives the same mask as `compresslib.core.masks`.

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(0)
W = rng.normal(size=(24, 24)).astype(np.float32)


def magnitude_mask_scratch(w, s):
    k = int(round(s * w.size))  # how many to drop
    order = np.argsort(np.abs(w).ravel(), kind="stable")
    m = np.ones(w.size, bool)
    m[order[:k]] = False
    return m.reshape(w.shape)


M = magnitude_mask_scratch(W, 0.75)
M24 = masks.nm_mask(W, 2, 4)
print(
    "same as core:",
    np.array_equal(M, masks.magnitude_mask(W, 0.75)),
    "| kept:",
    int(M.sum()),
    "of",
    W.size,
    "| 2:4 kept:",
    int(M24.sum()),
)

# %% mystnb={"figure": {"caption": "A random 24\u00d724 weight matrix (left), its 75 % magnitude mask (middle) and a 2:4 mask (right); pruned weights are white."}, "image": {"alt": "Three 24 by 24 heat maps in red and blue. The middle one keeps only the strongest quarter of the weights scattered irregularly; the right one keeps exactly two of every four along each row."}}
fig, ax = plt.subplots(1, 3, figsize=nb.figsize(height=2.6))
ax[0].imshow(W, vmin=-3, vmax=3)
ax[0].set_title("dense W")
ax[1].imshow(np.where(M, W, np.nan), vmin=-3, vmax=3)
ax[1].set_title("magnitude 75 %")
ax[2].imshow(np.where(M24, W, np.nan), vmin=-3, vmax=3)
ax[2].set_title("2:4")
for a in ax:
    a.set_xticks([])
    a.set_yticks([])
    a.grid(False)
plt.show()

# %% [markdown]
# Bytes of one 1,000×1,000 fp32 matrix under each encoding, against sparsity, computed by actually
# encoding matrices (`packing.encode(w, name)`), with the break-even points from the formulas.

# %% mystnb={"figure": {"caption": "Bytes of one 1,000\u00d71,000 float32 matrix stored dense, as a bitmask plus values, as CSR, and as a zlib-deflated bitmask, against its sparsity."}, "image": {"alt": "Line chart: dense stays flat at 4 MB; bitmask falls linearly from just above 4 MB; CSR starts at 8 MB and crosses dense at 50 percent sparsity; the deflated bitmask is lowest at high sparsity."}} tags=["nbval-check-output"]
sparsities = [0.0, 0.02, 0.05, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]
big = rng.normal(size=(1000, 1000)).astype(np.float32)
sizes = {e: [] for e in ("dense", "bitmask", "csr", "bitmask_z")}
for s in sparsities:
    w = np.where(masks.magnitude_mask(big, s), big, np.float32(0))
    for e in sizes:
        meta, arrays = packing.encode(w, e)
        assert np.array_equal(
            packing.decode(meta, arrays), w
        )  # every encoding is exact
        sizes[e].append(packing.stored_bytes(arrays) / 1e6)
print(
    "break-even sparsity against dense: bitmask %.3f, CSR %.2f"
    % (packing.break_even_sparsity("bitmask"), packing.break_even_sparsity("csr"))
)
fig, ax = plt.subplots(figsize=nb.figsize())
for e, v in sizes.items():
    ax.plot(sparsities, v, marker="o", ms=3, label=e)
ax.set_xlabel("sparsity")
ax.set_ylabel("MB")
ax.legend()
ax.set_title("1000×1000 fp32: bytes by encoding")
plt.show()

# %% [markdown]
# `bitmask_z` is the bitmask deflated with zlib: the mask of a pruned layer is far from random (whole
# input pixels of MNIST are never used), and entropy coding it is the last step of Han et al. (2016),
# *Deep Compression*. The gradual schedule:

# %% mystnb={"figure": {"caption": "The cubic sparsity schedule of Zhu & Gupta from 0 to 90 % over 400 steps, with the steps where the masks are recomputed."}, "image": {"alt": "A curve rising steeply from 0 and flattening at 0.9 by step 400, with dots every 50 steps marking mask updates."}}
sched = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=400, frequency=50)
t = np.arange(0, 500)
fig, ax = plt.subplots(figsize=nb.figsize(height=2.4))
ax.plot(t, [sched(i) for i in t], label="sparsity $s_t$")
ax.scatter(
    [i for i in t if sched.should_update(i)],
    [sched(i) for i in t if sched.should_update(i)],
    s=14,
    color=nb.OTHER_COLORS[1],
    zorder=3,
    label="mask updates",
)
ax.set_xlabel("step")
ax.set_ylabel("sparsity")
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## PyTorch
#
# ### Unstructured: masks alone, then packed
#
# The reference LeNet-300-100 ({glue:text}`lenet_params:,d` parameters). First PyTorch's own tool,
# `torch.nn.utils.prune`:
# it keeps `weight_orig` **and** a `weight_mask` and recomputes `weight` in a forward pre-hook, so the saved
# file *grows*, and the hook is extra work on every call.

# %%
xt, yt = cl.datasets.load_mnist("test", layout="torch")
train_t = cl.datasets.load_mnist("train", layout="torch")
from compresslib.torch import train as ttrain, pruning as tpruning

lenet_t = cl.zoo.pretrained("lenet300_100", "torch")
R = {}  # all reports of this chapter
R["torch fp32"] = cl.measure(lenet_t, data=(xt, yt), runs=30, name="fp32")

own = copy.deepcopy(lenet_t)
params = [(m, "weight") for m in own.modules() if isinstance(m, torch.nn.Linear)]
torch.nn.utils.prune.global_unstructured(
    params, pruning_method=torch.nn.utils.prune.L1Unstructured, amount=0.9
)
print("state_dict of the first pruned layer:", sorted(own[1].state_dict()))
R["torch masks (nn.utils.prune)"] = cl.measure(
    own, data=(xt, yt), runs=30, name="nn.utils.prune 0.9"
)
base_r, mask_r = R["torch fp32"], R["torch masks (nn.utils.prune)"]
masks_speed = base_r.latency_ms / mask_r.latency_ms
masks_sentence = (
    f"the masked model's file is {mask_r.file_bytes / base_r.file_bytes:.2f}× the dense"
    " one's and the model runs"
    f" {nb.pace(masks_speed, nb.timing_noise(base_r, mask_r), 'the dense one')}"
    f" ({masks_speed:.2f}×)"
)
cl.compare([base_r, mask_r])

# %% tags=["remove-cell"]
nb.glue("lenet_params", R["torch fp32"].params)
nb.glue("masks_sentence", masks_sentence)

# %% [markdown]
# In this run {glue:text}`masks_sentence`.

# %% [markdown]
# compresslib's `Magnitude` gives the same zeros as plain weights (no hooks). One-shot at 90 % costs
# accuracy; gradual pruning with fine-tuning recovers it. The hook goes into
# `compresslib.torch.train.fit(on_step=...)`; `finalize` returns a plain model.

# %% tags=["nbval-check-output"]
one_shot = cl.prune(lenet_t, cl.Magnitude(0.9, scope="global"))
lin = [m for m in one_shot.modules() if isinstance(m, torch.nn.Linear)]
print(
    "zeros per layer:",
    [int((m.weight == 0).sum()) for m in lin],
    "of",
    [m.weight.numel() for m in lin],
)
print(
    "same zeros as nn.utils.prune:",
    all(
        torch.equal(a.weight == 0, b.weight == 0)
        for a, b in zip(
            lin, [m for m in own.modules() if isinstance(m, torch.nn.Linear)]
        )
    ),
)

# %%
one_shot_acc = ttrain.evaluate(one_shot, (xt, yt))
print("one-shot accuracy: %.4f" % one_shot_acc)
model = tpruning.finalize(lenet_t)
steps = 3 * -(-len(train_t[0]) // 64)
hook = tpruning.GradualPruning(
    cl.Magnitude(
        0.9, scope="global", schedule=PolynomialDecay(0.0, 0.9, 0, int(0.6 * steps), 25)
    ),
    model,
)
t0 = time.perf_counter()
ttrain.fit(model, train_t, epochs=3, lr=1e-3, on_step=hook, lr_schedule="step")
gradual_t = hook.finalize(model)
gradual_acc = ttrain.evaluate(gradual_t, (xt, yt))
print(
    "gradual: sparsity %.3f, accuracy %.4f, fine-tune %.1f s"
    % (hook.sparsity, gradual_acc, time.perf_counter() - t0)
)
r = cl.measure(gradual_t, data=(xt, yt), runs=30, name="gradual 0.9 (zeros, .pt)")
R["torch zeros (state_dict)"] = r
r = copy.copy(r)
r.name = "gradual 0.9, packed .clz"
r.packed_bytes = cl.save(gradual_t, f"{tmp}/lenet_t.clz")
R["torch zeros, packed"] = r
back = cl.load(f"{tmp}/lenet_t.clz")
with torch.no_grad():
    print(
        "round trip identical:",
        torch.equal(
            back(torch.from_numpy(xt[:100])), gradual_t(torch.from_numpy(xt[:100]))
        ),
    )
from compresslib import io as clio

print(
    "encodings:",
    {
        k: v["encoding"]
        for k, v in clio.read_manifest(f"{tmp}/lenet_t.clz")["tensors"].items()
    },
)
zeros_r = R["torch zeros (state_dict)"]
zeros_speed = R["torch fp32"].latency_ms / zeros_r.latency_ms
zeros_noise = nb.timing_noise(R["torch fp32"], zeros_r)
zeros_sentence = (
    "The `.pt` file of the pruned model is "
    + (
        "byte for byte as large as the dense one"
        if zeros_r.file_bytes == R["torch fp32"].file_bytes
        else f"{zeros_r.file_bytes / R['torch fp32'].file_bytes:.2f}× the dense one"
    )
    + " and it runs"
    f" {nb.pace(zeros_speed, zeros_noise, 'the dense one')}"
    f" ({zeros_speed:.2f}×)"
)
cl.compare([R["torch fp32"], zeros_r, R["torch zeros, packed"]])

# %% tags=["remove-cell"]
nb.glue("t_fp32_acc", 100 * R["torch fp32"].accuracy)
nb.glue("t_one_shot_acc", 100 * one_shot_acc)
nb.glue("t_gradual_acc", 100 * gradual_acc)
nb.glue(
    "t_packed_ratio", R["torch fp32"].file_bytes / R["torch zeros, packed"].packed_bytes
)
nb.glue("zeros_sentence", zeros_sentence)

# %% [markdown]
# One-shot pruning to 90 % left {glue:text}`t_one_shot_acc:.2f` % accuracy; the gradual schedule with
# three epochs of fine-tuning reached {glue:text}`t_gradual_acc:.2f` % (fp32: {glue:text}`t_fp32_acc:.2f` %).
# {glue:md}`zeros_sentence`: dense kernels multiply zeros as fast as any number. The packed `.clz` file is {glue:text}`t_packed_ratio:.1f`×
# smaller, and loads back into an identical model.
#
# **N:M (2:4)** keeps exactly two of every four weights along each row (the first layer's fan-in, 784,
# is a multiple of 4):

# %% tags=["nbval-check-output"]
nm_t = cl.prune(lenet_t, cl.NM(2, 4))
w = nm_t[1].weight.detach().reshape(300, -1, 4)
print(
    "non-zeros per group of 4:",
    sorted(set((w != 0).sum(-1).flatten().tolist())),
    "non-zeros;",
    "sparsity %.2f" % masks.sparsity(nm_t[1].weight.detach().numpy()),
)

# %% [markdown]
# ### Sensitivity scan
#
# How much does each layer tolerate alone? Prune one layer at a time (one-shot, no fine-tuning) and measure
# accuracy. The big first layer tolerates far more than the small last one, which is why global pruning
# (one threshold) beats uniform per-layer pruning.

# %% mystnb={"figure": {"caption": "PyTorch LeNet-300-100: test accuracy when one layer alone is pruned to a given sparsity, without fine-tuning."}, "image": {"alt": "Three accuracy curves against sparsity from 0.5 to 0.98: the large first layer keeps its accuracy longest, the small last layer drops first."}}
scan_s = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
curves_t = tpruning.sensitivity(lenet_t, (xt, yt), sparsities=scan_s)
fig, ax = plt.subplots(figsize=nb.figsize())
for (name, acc), marker in zip(curves_t.items(), "os^"):
    lin = dict(lenet_t.named_modules())[name]
    ax.plot(
        scan_s,
        [100 * a for a in acc],
        marker=marker,
        label=f"layer {name} ({lin.in_features}→{lin.out_features})",
    )
ax.set_xlabel("sparsity of that layer")
ax.set_ylabel("accuracy (%)")
ax.legend()
ax.set_title("PyTorch LeNet-300-100 sensitivity")
plt.show()

# %% [markdown]
# ### Structured pruning with residual connections (Torch-Pruning)
#
# ResNet8 has three basic blocks; the stem's output is added to the first block's output, so their
# channels must be removed together. `cl.prune(model, cl.Structured(ratio), example_input=x)` traces the
# model with Torch-Pruning's `DependencyGraph`, scores each coupled group (the sum of L1 norms of the
# output weights of its convolutions) and removes the lowest `ratio` of every group.

# %% tags=["nbval-check-output"]
resnet_t = cl.zoo.pretrained("resnet8", "torch")
R["torch resnet8 fp32"] = cl.measure(
    resnet_t, data=(xt, yt), runs=30, name="resnet8 fp32"
)
struct_t = cl.prune(resnet_t, cl.Structured(0.5), example_input=xt[:1])
print(
    "channels after pruning: stem",
    struct_t.stem[0].out_channels,
    "| layer1.conv2",
    struct_t.layer1.conv2.out_channels,
    "| layer2",
    struct_t.layer2.conv2.out_channels,
    "| layer3",
    struct_t.layer3.conv2.out_channels,
    "| fc in",
    struct_t.fc.in_features,
)

# %% [markdown]
# Torch-Pruning's own `MetaPruner` beside it gives the same shapes (its default importance also reads the
# BatchNorm and the consumers' input weights, so it may pick other channels):

# %% tags=["nbval-check-output"]
import torch_pruning as tp

own_s = copy.deepcopy(resnet_t)
pruner = tp.pruner.MetaPruner(
    own_s,
    torch.from_numpy(xt[:1]),
    importance=tp.importance.MagnitudeImportance(p=1),
    pruning_ratio=0.5,
    ignored_layers=[own_s.fc],
)
pruner.step()
print(
    "same shapes:",
    [p.shape for p in own_s.parameters()] == [p.shape for p in struct_t.parameters()],
)

# %% [markdown]
# Removing half the channels of every group costs accuracy at once (BatchNorm statistics no longer
# match). A fine-tune wins it back, here with the unpruned model as teacher (`teacher=`: knowledge
# distillation, see the theory page). One epoch on half the training digits keeps the chapter quick
# and recovers only part of the loss; the recipe matters as much as the length: chapter 5 fine-tunes the
# same pruned model for one epoch too, with batch 64 at learning rate 1e-3 (twice the steps), and reaches
# {glue:text}`05_residual.ipynb::pruned_acc_t:.2%`. `bench/pruning.py` fine-tunes for 20 epochs and reports
# the final figures. The fine-tune runs on `DEVICE`, the model is measured on the CPU.

# %%
struct_before = ttrain.evaluate(struct_t, (xt, yt))
print("before fine-tune: %.4f" % struct_before)
t0 = time.perf_counter()
struct_t = struct_t.to(DEVICE)
ttrain.fit(
    struct_t,
    (train_t[0][:4000], train_t[1][:4000]),
    epochs=1,
    batch_size=128,
    lr=2e-3,
    teacher=resnet_t,
)
struct_t = struct_t.cpu()
struct_after = ttrain.evaluate(struct_t, (xt, yt))
print("after 1 epoch: %.4f (%.1f s)" % (struct_after, time.perf_counter() - t0))
R["torch resnet8 structured 0.5"] = cl.measure(
    struct_t, data=(xt, yt), runs=30, name="structured 0.5"
)
cl.compare([R["torch resnet8 fp32"], R["torch resnet8 structured 0.5"]])

# %% tags=["remove-cell"]
nb.glue("t_struct_before", 100 * struct_before)
nb.glue("t_struct_after", 100 * struct_after)
nb.glue("t_resnet_acc", 100 * R["torch resnet8 fp32"].accuracy)

# %% [markdown]
# Pruning took the ResNet8 from {glue:text}`t_resnet_acc:.2f` % to {glue:text}`t_struct_before:.2f` %
# before fine-tuning; one epoch brought it to {glue:text}`t_struct_after:.2f` %.
#
# ## Keras 3
#
# **Why not tfmot?** TensorFlow Model Optimization's `prune_low_magnitude` only accepts legacy `tf.keras`
# (Keras 2) models: it rejects Keras 3 models, and installing its legacy `tf-keras` dependency brings a
# second Keras and pins older packages. And like `torch.nn.utils.prune` it only masks, so it would not
# shrink anything either. compresslib's Keras backend uses the same NumPy masks as PyTorch (computed in
# PyTorch's output-major layout, so the same weights give the same masks), a Keras callback for gradual
# pruning, and its own graph walk for structured pruning.
#
# ### Unstructured, gradual, packed

# %%
xk, yk = cl.datasets.load_mnist("test", layout="keras")
train_k = cl.datasets.load_mnist("train", layout="keras")
from compresslib.keras import train as ktrain, pruning as kpruning, graph as kgraph

lenet_k = cl.zoo.pretrained("lenet300_100", "keras")
R["keras fp32"] = cl.measure(lenet_k, data=(xk, yk), runs=30, name="fp32")
model_k = kpruning.finalize(lenet_k)
steps = 3 * -(-len(train_k[0]) // 64)
cb = kpruning.GradualPruning(
    cl.Magnitude(
        0.9, scope="global", schedule=PolynomialDecay(0.0, 0.9, 0, int(0.6 * steps), 25)
    ),
    model_k,
)
t0 = time.perf_counter()
ktrain.fit(model_k, train_k, epochs=3, lr=1e-3, callbacks=[cb], lr_schedule="step")
gradual_k = cb.finalize(model_k)
k_gradual_acc = ktrain.evaluate(gradual_k, (xk, yk))
print(
    "gradual: sparsity %.3f, accuracy %.4f, fine-tune %.1f s"
    % (cb.sparsity, k_gradual_acc, time.perf_counter() - t0)
)
R["keras zeros (.keras)"] = cl.measure(
    gradual_k, data=(xk, yk), runs=30, name="gradual 0.9 (zeros, .keras)"
)
r = copy.copy(R["keras zeros (.keras)"])
r.name = "gradual 0.9, packed .clz"
r.packed_bytes = cl.save(gradual_k, f"{tmp}/lenet_k.clz")
R["keras zeros, packed"] = r
back = cl.load(f"{tmp}/lenet_k.clz")
print(
    "round trip identical:",
    np.array_equal(np.asarray(back(xk[:100])), np.asarray(gradual_k(xk[:100]))),
)
cl.compare([R["keras fp32"], R["keras zeros (.keras)"], R["keras zeros, packed"]])

# %% [markdown]
# The same sensitivity scan in Keras (the masks are the same as PyTorch's for the same weights):

# %% mystnb={"figure": {"caption": "Keras LeNet-300-100: test accuracy when one layer alone is pruned, without fine-tuning (compare with the PyTorch scan above)."}, "image": {"alt": "Three accuracy curves against sparsity, shaped like the PyTorch ones: fc1 tolerates the most pruning, the output layer the least."}}
curves_k = kpruning.sensitivity(lenet_k, (xk, yk), sparsities=scan_s)
fig, ax = plt.subplots(figsize=nb.figsize())
for (name, acc), marker in zip(curves_k.items(), "os^"):
    ax.plot(scan_s, [100 * a for a in acc], marker=marker, label=name)
ax.set_xlabel("sparsity of that layer")
ax.set_ylabel("accuracy (%)")
ax.legend()
ax.set_title("Keras LeNet-300-100 sensitivity")
plt.show()

# %% [markdown]
# ### Structured pruning: compresslib's graph walk
#
# Nothing in the Keras 3 ecosystem removes channels from a functional model with residual additions, so
# compresslib walks the graph (`compresslib.keras.graph.analyse`): every Conv2D/Dense output starts a channel
# group; BatchNormalization, ReLU, ZeroPadding2D and pooling pass channels through; an `Add` unites the
# groups of its inputs; a Dense after `Flatten` loses the rows $(h W + w) C + c$ of every removed channel
# $c$. Groups that reach the model output stay whole. The groups of ResNet8:

# %% tags=["nbval-check-output"]
resnet_k = cl.zoo.pretrained("resnet8", "keras")
g = kgraph.analyse(resnet_k)
for root, producers in g.groups().items():
    print(("frozen " if g.is_frozen(root) else "prune  ") + " + ".join(producers))

# %% tags=["nbval-check-output"]
struct_k = cl.prune(resnet_k, cl.Structured(0.5))
for l in struct_k.layers:
    if hasattr(l, "kernel"):
        print(f"{l.name:15s} kernel {tuple(l.kernel.shape)}")

# %%
R["keras resnet8 fp32"] = cl.measure(
    resnet_k, data=(xk, yk), runs=30, name="resnet8 fp32"
)
t0 = time.perf_counter()
ktrain.fit(
    struct_k,
    (train_k[0][:4000], train_k[1][:4000]),
    epochs=1,
    batch_size=128,
    lr=2e-3,
    teacher=resnet_k,
)
struct_k = kpruning.finalize(
    struct_k
)  # a plain copy: without the optimizer state fit() attached
k_struct_after = ktrain.evaluate(struct_k, (xk, yk))
print("after 1 epoch: %.4f (%.1f s)" % (k_struct_after, time.perf_counter() - t0))
R["keras resnet8 structured 0.5"] = cl.measure(
    struct_k, data=(xk, yk), runs=30, name="structured 0.5"
)
cl.compare([R["keras resnet8 fp32"], R["keras resnet8 structured 0.5"]])


# %% [markdown]
# Parameters per layer, before and after structured pruning (the same in both frameworks: the channel
# choice is the same given the same weights, a parity test checks it):


# %% mystnb={"figure": {"caption": "Keras ResNet8: parameters of each convolution and dense layer before and after removing half the channels of every group."}, "image": {"alt": "Paired bars for ten layers from stem_conv to fc; after pruning every convolution keeps about a quarter of its parameters and fc about half."}}
def per_layer(rep):
    return {
        l.name: l.params
        for l in rep.layers
        if l.params and l.kind in ("Conv2d", "Linear", "Conv2D", "Dense")
    }


a, b = per_layer(R["keras resnet8 fp32"]), per_layer(R["keras resnet8 structured 0.5"])
names = list(a)
xs = np.arange(len(names))
fig, ax = plt.subplots(figsize=nb.figsize(height=3.2))
ax.bar(xs - 0.2, [a[n] for n in names], 0.4, label="fp32")
ax.bar(xs + 0.2, [b.get(n, 0) for n in names], 0.4, label="structured 0.5")
ax.set_xticks(xs, names, rotation=45, ha="right")
ax.set_ylabel("parameters")
ax.legend()
ax.set_title("Keras ResNet8: parameters per layer")
plt.show()

# %% [markdown]
# ## Side by side
#
# Every row measured above, against its own framework's fp32 model (above 1: smaller, faster; a negative drop
# is a gain):

# %%
from IPython.display import Markdown, display

rows = []
for key, base in [
    ("torch masks (nn.utils.prune)", "torch fp32"),
    ("torch zeros (state_dict)", "torch fp32"),
    ("torch zeros, packed", "torch fp32"),
    ("torch resnet8 structured 0.5", "torch resnet8 fp32"),
    ("keras zeros (.keras)", "keras fp32"),
    ("keras zeros, packed", "keras fp32"),
    ("keras resnet8 structured 0.5", "keras resnet8 fp32"),
]:
    r, b = R[key], R[base]
    size = r.packed_bytes or r.file_bytes
    rows.append(
        (
            key,
            b.file_bytes / size,
            b.latency_ms / r.latency_ms,
            100 * (b.accuracy - r.accuracy),
            1 - r.nonzero_params / b.params,
        )
    )
display(
    Markdown(
        "| model | size × | speedup × | accuracy drop pt | parameters removed %"
        " |\n|---|---:|---:|---:|---:|\n"
        + "\n".join(
            f"| {k} | {s:.2f} | {v:.2f} | {d:+.2f} | {100 * p:.1f} |"
            for k, s, v, d, p in rows
        )
    )
)

# %% mystnb={"figure": {"caption": "Every pruned model of this chapter against its framework's fp32 model: how many times smaller its file is (left) and how many times faster it runs (right, log axis); the line at 1 is the fp32 model."}, "image": {"alt": "Two horizontal bar charts with one row per pruned model of the table above, PyTorch bars vermillion and Keras bars blue, with a reference line at 1 in each panel."}}
fig, ax = plt.subplots(1, 2, figsize=nb.figsize(height=3.4), sharey=True)
ys = np.arange(len(rows))[::-1]
colors = [nb.FRAMEWORK_COLORS[k.split()[0]] for k, *_ in rows]
ax[0].barh(ys, [s for _, s, *_ in rows], color=colors)
ax[0].axvline(1, color=nb.NEUTRAL, lw=0.8)
ax[0].set_yticks(ys, [k.split(" ", 1)[1] for k, *_ in rows])
ax[0].set_xlabel("× smaller")
ax[1].barh(ys, [v for _, _, v, *_ in rows], color=colors)
ax[1].axvline(1, color=nb.NEUTRAL, lw=0.8)
ax[1].set_xscale("log")
ax[1].set_xlabel("× faster (log)")
speeds = [v for _, _, v, *_ in rows]
ticks = nb.ratio_ticks(speeds)
ax[1].set_xticks(ticks, [f"{t:g}" for t in ticks])
ax[1].xaxis.set_minor_formatter(
    plt.NullFormatter()
)  # no minor labels: they overprinted the major ones
handles = [
    plt.Rectangle((0, 0), 1, 1, color=nb.FRAMEWORK_COLORS[f])
    for f in ("torch", "keras")
]
fig.legend(
    handles, ["PyTorch", "Keras"], loc="upper center", ncol=2, frameon=False
)  # above the bars
fig.tight_layout(rect=(0, 0, 1, 0.92))
plt.show()
mac_ratio_t = R["torch resnet8 fp32"].macs / R["torch resnet8 structured 0.5"].macs

# %% tags=["remove-cell"]
nb.glue("t_struct_mac_ratio", mac_ratio_t)
nb.glue(
    "k_packed_ratio", R["keras fp32"].file_bytes / R["keras zeros, packed"].packed_bytes
)
nb.glue("t_gradual_drop", 100 * (R["torch fp32"].accuracy - gradual_acc))
nb.glue("k_gradual_drop", 100 * (R["keras fp32"].accuracy - k_gradual_acc))
nb.glue("bitmask_break_even", 100 * packing.break_even_sparsity("bitmask"))
nb.glue("csr_break_even", 100 * packing.break_even_sparsity("csr"))

# %% [markdown]
# The speedups come from measured time (median of runs at batch 32 on this machine's CPU threads), not
# from MAC counts. ResNet8 is small: at half the channels the fixed per-call cost of the framework weighs
# more in Keras (a traced `tf.function` call) than in PyTorch, so Keras needs a higher ratio to reach the
# same speedup; `bench/pruning.py` measures two ratios in both frameworks after a proper fine-tune.
#
# The latency columns of this page are each model measured on its own, inside a notebook kernel that
# shares two cores with its front end, so take them as rough: a speedup far above the MAC ratio
# ({glue:text}`t_struct_mac_ratio:.2f`× fewer MACs for the PyTorch ResNet8 at 0.5) means the baseline's
# measurement was slow, not that the pruned model beat arithmetic. The figures worth quoting come from the
# benches, which time the models head to head in a plain process: the next section shows one.

# %% [markdown]
# ## On a harder data set: the wide ResNet-20 on Fashion-MNIST
#
# On 2,000 MNIST digits the pruned models above land within a few tenths of a point of their originals —
# inside the noise of a single accuracy (a standard error of about 0.3 pt). Fashion-MNIST's 10,000 test
# images (shipped with compresslib; see the introduction) and a network with room to lose make trade-offs
# visible. The wide ResNet-20 (`fashion_resnet20_wide`: 32/64/128 channels, where 3×3 convolutions take
# almost all the time) is the network to prune.
#
# **Which layers can lose channels?** Switch off the lowest-L1 share of one block-internal convolution's
# output channels — its filters and its BatchNorm scale and shift set to zero, which gives exactly the
# outputs of the network with those channels removed — leave everything else as trained (no fine-tuning)
# and measure. Nine layers × four ratios on 2,000 test images is 36 evaluations of the wide network:
# minutes on 2 cores, longer than a chapter may run. So `scripts/fashion_sensitivity.py` computed them once
# and kept, for every point, which images the network got right (the figure below is drawn from that
# cache); the cell after it recomputes one point here and checks it against the cache.

# %% mystnb={"figure": {"caption": "Wide ResNet-20 on 2,000 Fashion-MNIST test images: accuracy when one block-internal convolution alone loses its lowest-L1 share of output channels, without fine-tuning (cached by scripts/fashion_sensitivity.py). Colour: the stage; the grey band: the unpruned network's 95 % interval."}, "image": {"alt": "Nine accuracy curves against the share of channels removed, from 0.25 to 0.9, three colours for the three stages; most curves stay inside the grey band at 0.25 and fall apart at 0.9, some layers much earlier than others."}}
import json
from pathlib import Path

from compresslib.core import stats

CACHE = Path(cl.__file__).parent / "data" / "results" / "fashion_prune"
SENS = json.loads((CACHE / "sensitivity.json").read_text())


def cached_correct(hex_bits: str) -> np.ndarray:
    """Which of the scan's images a network got right, unpacked from the cache."""
    return stats.unpack_correctness(hex_bits, SENS["images"])


base_ok = cached_correct(SENS["baseline"]["correct"])
band = stats.wilson_interval(int(base_ok.sum()), base_ok.size)
fig, ax = plt.subplots(figsize=nb.figsize(height=3.8))
ax.axhspan(100 * band[0], 100 * band[1], color=nb.NEUTRAL, alpha=0.2, lw=0)
for name, layer in SENS["layers"].items():
    stage, block = int(name[5]), int(name.split(".")[1])
    ax.plot(
        [p["ratio"] for p in layer["points"]],
        [100 * p["accuracy"] for p in layer["points"]],
        color=nb.OTHER_COLORS[stage - 1], marker="os^"[block], lw=1.2,
        label=f"stage {stage} block {block} ({layer['channels']} ch)",
    )
ax.set_xlabel("share of that layer's output channels removed")
ax.set_ylabel("accuracy (%)")
ax.legend(ncol=3, fontsize="x-small", loc="lower left")
ax.set_title("Wide ResNet-20, one layer at a time (no fine-tuning)")
plt.show()


def drop_test(name: str, ratio: float) -> stats.PairedResult:
    """McNemar's test: the unpruned network against ``name`` pruned to ``ratio``."""
    point = SENS["layers"][name]["points"][SENS["ratios"].index(ratio)]
    return stats.paired(None, base_ok, cached_correct(point["correct"]))


at_half = {name: drop_test(name, 0.5) for name in SENS["layers"]}
hurt_at_half = [n for n, r in at_half.items() if r.verdict == "lower"]
worst = min(at_half, key=lambda n: at_half[n].difference_pt)

# %% [markdown]
# The cache is a claim too: recompute one point — the layer that lost most at half its channels — on the
# scan's first 500 images, the same batch the script ran, and check every image agrees.

# %%
import copy


def switch_off(model, conv, ratio):
    """A copy of ``model``: ``conv``'s lowest-L1 ``ratio`` of channels off."""
    out = copy.deepcopy(model).eval()
    layer = out.get_submodule(conv)
    bn = out.get_submodule(conv[: -len("conv1")] + "bn1")
    l1 = layer.weight.detach().abs().sum(dim=(1, 2, 3))
    drop = torch.argsort(l1)[: round(ratio * layer.out_channels)]
    with torch.no_grad():
        layer.weight[drop], bn.weight[drop], bn.bias[drop] = 0, 0, 0
    return out


wide_t = cl.zoo.pretrained("fashion_resnet20_wide", framework="torch").eval()
xf, yf = cl.datasets.load_fashion_mnist("test", layout="torch")
rng = np.random.default_rng(SENS["seed"])
scan_idx = np.sort(rng.choice(10_000, size=SENS["images"], replace=False))[:500]
with torch.inference_mode():
    logits = switch_off(wide_t, worst, 0.5)(torch.from_numpy(xf[scan_idx]))
live = logits.argmax(1).numpy() == yf[scan_idx]
point = SENS["layers"][worst]["points"][SENS["ratios"].index(0.5)]
cached = cached_correct(point["correct"])[:500]
assert (live == cached).all(), "the cached scan no longer matches the network"
print(
    f"{worst} at 0.5, first 500 images: {int(live.sum())} right live,"
    f" {int(cached.sum())} in the cache"
)

# %% tags=["remove-cell"]
nb.glue("fw_sens_images", f"{SENS['images']:,}")
nb.glue("fw_sens_base", stats.format_accuracy(int(base_ok.sum()), base_ok.size))
nb.glue("fw_sens_hurt", f"{len(hurt_at_half)} of {len(at_half)}")
nb.glue("fw_sens_worst", f"`{worst}` ({SENS['layers'][worst]['channels']} ch.)")
nb.glue("fw_sens_worst_test", at_half[worst].describe())
best = max(at_half, key=lambda n: at_half[n].difference_pt)
nb.glue("fw_sens_best", f"`{best}`")
nb.glue("fw_sens_best_test", at_half[best].describe())

# %% [markdown]
# Unlike the MNIST curves, these separate. On the {glue:text}`fw_sens_images` scanned images (the unpruned
# network: {glue:text}`fw_sens_base`), removing half of one layer's channels costs accuracy that McNemar's
# paired test can see in {glue:text}`fw_sens_hurt` layers. The most sensitive is {glue:text}`fw_sens_worst`:
# {glue:text}`fw_sens_worst_test`; the least, {glue:text}`fw_sens_best`: {glue:text}`fw_sens_best_test`.
# That is what a per-layer ratio (or a fine-tune that lets the rest of the network compensate) is for.
#
# **Pruning the whole network and fine-tuning.** `bench/fashion.py` prunes every stage with
# `Structured(0.5)` (4× fewer MACs), fine-tunes 4 epochs with the unpruned network as teacher
# (`scripts/fashion_prune.py`; the result ships in both frameworks), folds BatchNorm and times both
# against the folded original, head to head. Its committed results (the Results page has every column):

# %%
from compresslib import benchresults

FASHION = benchresults.load_results("fashion")
prune_rows = [r for r in FASHION["rows"] if r["model"] == "fashion_resnet20_wide"]
columns = ("framework",) + tuple(c for c in benchresults.COMPACT if c != "model")
display(Markdown("\n".join(benchresults.table(prune_rows, columns))))
prune_targets = [
    t for t in FASHION.get("targets", []) if "structured pruning" in t["target"]
]
for t in prune_targets:
    print(f"{t['status']}: {t['target']}")
print(benchresults.provenance(FASHION, prune_rows))

# %% tags=["remove-cell"]
def _prune_target(framework, ratio):
    """The bench's verdict for one framework and one pruning ratio."""
    label = f"Structured({ratio})"
    return next(t for t in prune_targets
                if t["target"].startswith(framework) and t["path"].startswith(label))


half_t, half_k = _prune_target("torch", 0.5), _prune_target("keras", 0.5)
more_t = _prune_target("torch", 0.6)
nb.glue("fw_prune_drop", f"{half_t['drop_pt']:+.2f}")
lo, hi = half_t["drop_ci_pt"]
nb.glue("fw_prune_ci", f"{lo:+.2f} to {hi:+.2f}")
nb.glue("fw_prune_verdict", half_t["verdict"])
nb.glue("fw_prune_speed_t", f"{half_t['speedup']:.2f}")
nb.glue("fw_prune_speed_k", f"{half_k['speedup']:.2f}")
nb.glue("fw_prune_status", f"{half_t['status']} in PyTorch and {half_k['status']} in Keras")
nb.glue("fw_prune6_drop", f"{more_t['drop_pt']:+.2f}")
lo, hi = more_t["drop_ci_pt"]
nb.glue("fw_prune6_ci", f"{lo:+.2f} to {hi:+.2f}")
nb.glue("fw_prune6_verdict", more_t["verdict"])
nb.glue("fw_prune6_speed_t", f"{more_t['speedup']:.2f}")

# %% [markdown]
# Pruned by half and distilled, the wide network's accuracy drop is {glue:text}`fw_prune_drop` pt (a
# positive drop is a loss; 95 % interval {glue:text}`fw_prune_ci`): {glue:text}`fw_prune_verdict` on 10,000
# images — the fine-tune recovers what the one-shot curves above lose. Four times fewer MACs bought
# {glue:text}`fw_prune_speed_t`× in PyTorch and {glue:text}`fw_prune_speed_k`× in Keras, each timed head to
# head against the folded original, so the bench's target (at least 2×, with the drop's interval below
# 1 pt) reads {glue:text}`fw_prune_status`. MACs are not time, as chapter 1 measured: 4× fewer MACs gave
# less than 3×. Going further costs accuracy the same fine-tune cannot recover: `Structured(0.6)` runs
# {glue:text}`fw_prune6_speed_t`× faster in PyTorch but its drop is {glue:text}`fw_prune6_drop` pt
# ({glue:text}`fw_prune6_ci`), which McNemar's test reads as {glue:text}`fw_prune6_verdict`.
#
# ## Summary
#
# * Zeros alone save nothing on dense storage and dense kernels, which do not care what the numbers are, and
#   masks cost: in this run {glue:text}`masks_sentence`.
# * Sparse encodings make zeros cost less than a value: a bitmask from {glue:text}`bitmask_break_even:.1f` %
#   sparsity, CSR from {glue:text}`csr_break_even:.0f` % (and only best when almost empty); compresslib picks
#   the smallest per tensor, and 90 % sparsity gave files {glue:text}`t_packed_ratio:.1f`× (PyTorch) and
#   {glue:text}`k_packed_ratio:.1f`× (Keras) smaller.
# * Global magnitude pruning with a gradual schedule and three epochs of fine-tuning keeps LeNet-300-100
#   within {glue:text}`t_gradual_drop:.2f` (PyTorch) and {glue:text}`k_gradual_drop:.2f` (Keras) points of
#   its accuracy at 90 % sparsity.
# * On Fashion-MNIST the layers differ: half of one layer's channels cost a measurable loss in
#   {glue:text}`fw_sens_hurt` block-internal convolutions of the wide ResNet-20 (no fine-tuning); with every
#   stage pruned by half and a 4-epoch distillation, McNemar's test on 10,000 images reads
#   {glue:text}`fw_prune_verdict`.
# * Structured pruning is the one that makes dense hardware faster: it removes channels, so parameters,
#   MACs, bytes and latency all fall — provided the channels coupled by residual additions are removed
#   together (Torch-Pruning's dependency graph; compresslib's graph walk for Keras 3).
#
# ## Exercises
#
# 1. Run the sensitivity scan on LeNet-5's convolutions. Which layer would you prune least?
#
#    <details><summary>Hint</summary>
#
#    `tpruning.sensitivity(cl.zoo.pretrained("lenet5", "torch"), (xt, yt), sparsities=scan_s)` scans
#    every Conv2d and Linear layer; its keys are the `Sequential` indices, so keep those whose module
#    (`dict(model.named_modules())[key]`) is a `torch.nn.Conv2d`. Compare how many weights each
#    convolution has (6 filters of 5×5×1 against 16 of 5×5×6) with how fast its curve falls.
#
#    </details>
#
# 2. Change `scope="global"` to `"layer"` at 90 % and compare accuracy after the same fine-tune.
#
#    <details><summary>Hint</summary>
#
#    Re-run the gradual cell with `cl.Magnitude(0.9, scope="layer", schedule=...)` and a fresh
#    `tpruning.finalize(lenet_t)`, keeping `epochs=3` and the learning rate. Before training, print the
#    zeros per layer of `cl.prune(lenet_t, cl.Magnitude(0.9, scope=...))` for both scopes: which
#    layer does the global threshold spare, and what does the sensitivity scan say about it?
#
#    </details>
#
# 3. From the formulas, at what sparsity does CSR with int16 column indices beat the bitmask for a
#    300×784 layer? Check with `packing.encode`.
#
#    <details><summary>Hint</summary>
#
#    With $n = 300 \cdot 784$ and $z$ non-zeros, set the bitmask's $n/8 + 4z$ against CSR with 2-byte
#    column indices, $4z + 2z + 4 \cdot 301$ (values, indices, and 301 row pointers kept as int32), and
#    solve for $z$. `packing.bitmask_bytes` and `packing.csr_bytes` hold the formulas;
#    `packing.encode(w, "csr")` stores int32 indices, so cast its `"indices"` array to `np.int16` before
#    `packing.stored_bytes`. The hidden cell below does this for LeNet-300-100's first layer.
#
#    </details>
#
# 4. Prune ResNet8 with `Structured(0.75)` and fine-tune; plot speedup against ratio for both frameworks.
#
#    <details><summary>Hint</summary>
#
#    Repeat the structured cells for ratios 0.25, 0.5 and 0.75: `cl.prune(resnet_t, cl.Structured(r),
#    example_input=xt[:1])` and `cl.prune(resnet_k, cl.Structured(r))`, the same one-epoch
#    `ttrain.fit`/`ktrain.fit` with `teacher=`, then `cl.measure`. The speedup is the fp32 report's
#    `latency_ms` over the pruned one's, measured in the same run; plot it beside the MAC ratio.
#
#    </details>
#
# 5. Add a `Concatenate` to a small functional model and watch which groups `kgraph.analyse` freezes.
#
#    <details><summary>Hint</summary>
#
#    Build e.g. two `Conv2D` branches on one input, join them with `keras.layers.Concatenate()`, and
#    end in a `Conv2D` and a `Dense`. Print `g.groups()` and `g.is_frozen(root)` as in the Keras cell,
#    and `g.skipped`: is `Concatenate` among the merges the walk understands (`kgraph.MERGES`)? Then
#    try `cl.prune(model, cl.Structured(0.5))` and look at which kernels keep their shape.
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 3: CSR with int16 column indices (int32 row pointers)
# against the bitmask, for LeNet-300-100's first layer (300 x 784).
import numpy as np
import torch
import compresslib as cl
from compresslib.core import masks, packing

mlp = cl.zoo.pretrained("lenet300_100", "torch")
w300 = [l for l in mlp.modules() if isinstance(l, torch.nn.Linear)][0]
w300 = w300.weight.detach().numpy()
rows, n = w300.shape[0], w300.size  # 300 rows, 235,200 weights
# bitmask n/8 + 4z = CSR 4z + 2z + 4(rows + 1)  =>  z = n/16 - 2(rows + 1)
z_even = n / 16 - 2 * (rows + 1)
s_even = 1 - z_even / n
print(
    f"Exercise 3: CSR with int16 indices beats the bitmask below {z_even:,.0f}"
    f" non-zeros, above {100 * s_even:.2f} % sparsity (int32: above"
    f" {100 * (1 - (n / 32 - (rows + 1)) / n):.2f} %)"
)
for s in (0.93, 0.95):  # just below and just above the break-even
    ws = np.where(masks.magnitude_mask(w300, s), w300, np.float32(0))
    bitmask = packing.stored_bytes(packing.encode(ws, "bitmask")[1])
    csr = packing.encode(ws, "csr")[1]
    csr["indices"] = csr["indices"].astype(np.int16)
    csr16 = packing.stored_bytes(csr)
    z = int((ws != 0).sum())
    assert bitmask == packing.bitmask_bytes(n, z)
    assert csr16 == packing.csr_bytes(rows, z, index_bytes=2) + 2 * (rows + 1)
    print(f"  {s:.0%} sparsity: bitmask {bitmask:,} B, CSR int16 {csr16:,} B")
    assert (csr16 < bitmask) == (s > s_even)
assert abs(s_even - 0.9401) < 1e-4

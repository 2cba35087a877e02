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

# %%
import os, time, copy, warnings, tempfile
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")            # no progress bars in the rendered book
warnings.filterwarnings("ignore")
import numpy as np
import torch                                  # torch before tensorflow
import torch.nn.utils.prune
import tensorflow as tf
import keras
import matplotlib.pyplot as plt
import compresslib as cl
from compresslib.core import masks, packing
from compresslib.core.schedules import PolynomialDecay

torch.manual_seed(0); keras.utils.set_random_seed(0); np.random.seed(0)
tmp = tempfile.mkdtemp()
print("torch", torch.__version__, "| keras", keras.__version__, "| threads", torch.get_num_threads())

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

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
W = rng.normal(size=(24, 24)).astype(np.float32)

def magnitude_mask_scratch(w, s):
    k = int(round(s * w.size))                       # how many to drop
    order = np.argsort(np.abs(w).ravel(), kind="stable")
    m = np.ones(w.size, bool); m[order[:k]] = False
    return m.reshape(w.shape)

M = magnitude_mask_scratch(W, 0.75)
M24 = masks.nm_mask(W, 2, 4)
print("same as core:", np.array_equal(M, masks.magnitude_mask(W, 0.75)),
      "| kept:", int(M.sum()), "of", W.size, "| 2:4 kept:", int(M24.sum()))

# %%
fig, ax = plt.subplots(1, 3, figsize=(11, 3.4))
ax[0].imshow(W, cmap="RdBu", vmin=-3, vmax=3); ax[0].set_title("dense W")
ax[1].imshow(np.where(M, W, np.nan), cmap="RdBu", vmin=-3, vmax=3); ax[1].set_title("magnitude 75 % (white = 0)")
ax[2].imshow(np.where(M24, W, np.nan), cmap="RdBu", vmin=-3, vmax=3); ax[2].set_title("2:4 (two of every four)")
for a in ax: a.set_xticks([]); a.set_yticks([])
plt.tight_layout(); plt.show()

# %% [markdown]
# Bytes of one 1,000×1,000 fp32 matrix under each encoding, against sparsity, computed by actually
# encoding matrices (`packing.encode(w, name)`), with the break-even points from the formulas.

# %%
# NBVAL_CHECK_OUTPUT
sparsities = [0.0, 0.02, 0.05, 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]
big = rng.normal(size=(1000, 1000)).astype(np.float32)
sizes = {e: [] for e in ("dense", "bitmask", "csr", "bitmask_z")}
for s in sparsities:
    w = np.where(masks.magnitude_mask(big, s), big, np.float32(0))
    for e in sizes:
        meta, arrays = packing.encode(w, e)
        assert np.array_equal(packing.decode(meta, arrays), w)       # every encoding is exact
        sizes[e].append(packing.stored_bytes(arrays) / 1e6)
print("break-even: bitmask %.3f, CSR %.2f" % (packing.break_even_sparsity("bitmask"), packing.break_even_sparsity("csr")))
plt.figure(figsize=(6, 3.4))
for e, v in sizes.items():
    plt.plot(sparsities, v, marker="o", ms=3, label=e)
plt.xlabel("sparsity"); plt.ylabel("MB"); plt.legend(); plt.title("1000×1000 fp32: bytes by encoding"); plt.show()

# %% [markdown]
# `bitmask_z` is the bitmask deflated with zlib: the mask of a pruned layer is far from random (whole
# input pixels of MNIST are never used), and entropy coding it is the last step of Han et al. (2016),
# *Deep Compression*. The gradual schedule:

# %%
sched = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=400, frequency=50)
t = np.arange(0, 500)
plt.figure(figsize=(6, 2.8)); plt.plot(t, [sched(i) for i in t], label="$s_t$")
plt.scatter([i for i in t if sched.should_update(i)], [sched(i) for i in t if sched.should_update(i)], s=12, c="C3", label="mask updates")
plt.xlabel("step"); plt.ylabel("sparsity"); plt.legend(); plt.show()

# %% [markdown]
# ## PyTorch
#
# ### Unstructured: masks alone, then packed
#
# The reference LeNet-300-100 (266,610 parameters). First PyTorch's own tool, `torch.nn.utils.prune`:
# it keeps `weight_orig` **and** a `weight_mask` and recomputes `weight` in a forward pre-hook, so the saved
# file *grows* and nothing runs faster.

# %%
xt, yt = cl.datasets.load_mnist("test", layout="torch")
train_t = cl.datasets.load_mnist("train", layout="torch")
from compresslib.torch import train as ttrain, pruning as tpruning
lenet_t = cl.zoo.pretrained("lenet300_100", "torch")
R = {}                                                          # all reports of this chapter
R["torch fp32"] = cl.measure(lenet_t, data=(xt, yt), runs=30, name="fp32")

own = copy.deepcopy(lenet_t)
params = [(m, "weight") for m in own.modules() if isinstance(m, torch.nn.Linear)]
torch.nn.utils.prune.global_unstructured(params, pruning_method=torch.nn.utils.prune.L1Unstructured, amount=0.9)
print(sorted(own[1].state_dict()))
R["torch masks (nn.utils.prune)"] = cl.measure(own, data=(xt, yt), runs=30, name="nn.utils.prune 0.9")
cl.compare([R["torch fp32"], R["torch masks (nn.utils.prune)"]])

# %% [markdown]
# compresslib's `Magnitude` gives the same zeros as plain weights (no hooks). One-shot at 90 % costs
# accuracy; gradual pruning with fine-tuning recovers it. The hook goes into
# `compresslib.torch.train.fit(on_step=...)`; `finalize` returns a plain model.

# %%
# NBVAL_CHECK_OUTPUT
one_shot = cl.prune(lenet_t, cl.Magnitude(0.9, scope="global"))
lin = [m for m in one_shot.modules() if isinstance(m, torch.nn.Linear)]
print("zeros per layer:", [int((m.weight == 0).sum()) for m in lin], "of", [m.weight.numel() for m in lin])
print("same zeros as nn.utils.prune:", all(torch.equal(a.weight == 0, b.weight == 0) for a, b in zip(lin, [m for m in own.modules() if isinstance(m, torch.nn.Linear)])))

# %%
print("one-shot accuracy: %.4f" % ttrain.evaluate(one_shot, (xt, yt)))
model = tpruning.finalize(lenet_t)
steps = 3 * -(-len(train_t[0]) // 64)
hook = tpruning.GradualPruning(cl.Magnitude(0.9, scope="global",
                               schedule=PolynomialDecay(0.0, 0.9, 0, int(0.6 * steps), 25)), model)
t0 = time.perf_counter()
ttrain.fit(model, train_t, epochs=3, lr=1e-3, on_step=hook, lr_schedule="step")
gradual_t = hook.finalize(model)
print("gradual: sparsity %.3f, accuracy %.4f, fine-tune %.1f s" % (hook.sparsity, ttrain.evaluate(gradual_t, (xt, yt)), time.perf_counter() - t0))
r = cl.measure(gradual_t, data=(xt, yt), runs=30, name="gradual 0.9 (zeros, .pt)")
R["torch zeros (state_dict)"] = r
r = copy.copy(r); r.name = "gradual 0.9, packed .clz"
r.packed_bytes = cl.save(gradual_t, f"{tmp}/lenet_t.clz")
R["torch zeros, packed"] = r
back = cl.load(f"{tmp}/lenet_t.clz")
with torch.no_grad():
    print("round trip identical:", torch.equal(back(torch.from_numpy(xt[:100])), gradual_t(torch.from_numpy(xt[:100]))))
from compresslib import io as clio
print("encodings:", {k: v["encoding"] for k, v in clio.read_manifest(f"{tmp}/lenet_t.clz")["tensors"].items()})
cl.compare([R["torch fp32"], R["torch zeros (state_dict)"], R["torch zeros, packed"]])

# %% [markdown]
# The `.pt` file of the pruned model is as large as the dense one and the latency is the same: dense
# kernels multiply zeros as fast as any number. The packed `.clz` file is several times smaller, and loads
# back into an identical model.
#
# **N:M (2:4)** keeps exactly two of every four weights along each row (the first layer's fan-in, 784,
# is a multiple of 4):

# %%
# NBVAL_CHECK_OUTPUT
nm_t = cl.prune(lenet_t, cl.NM(2, 4))
w = nm_t[1].weight.detach().reshape(300, -1, 4)
print("every group of 4 holds", sorted(set((w != 0).sum(-1).flatten().tolist())), "non-zeros;",
      "sparsity %.2f" % masks.sparsity(nm_t[1].weight.detach().numpy()))

# %% [markdown]
# ### Sensitivity scan
#
# How much does each layer tolerate alone? Prune one layer at a time (one-shot, no fine-tuning) and measure
# accuracy. The big first layer tolerates far more than the small last one, which is why global pruning
# (one threshold) beats uniform per-layer pruning.

# %%
scan_s = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
curves_t = tpruning.sensitivity(lenet_t, (xt, yt), sparsities=scan_s)
plt.figure(figsize=(6, 3.2))
for name, acc in curves_t.items():
    lin = dict(lenet_t.named_modules())[name]
    plt.plot(scan_s, acc, marker="o", label=f"layer {name} ({lin.in_features}→{lin.out_features})")
plt.xlabel("sparsity of that layer"); plt.ylabel("accuracy"); plt.legend(); plt.title("PyTorch LeNet-300-100 sensitivity"); plt.show()

# %% [markdown]
# ### Structured pruning with residual connections (Torch-Pruning)
#
# ResNet8 has three basic blocks; the stem's output is added to the first block's output, so their
# channels must be removed together. `cl.prune(model, cl.Structured(ratio), example_input=x)` traces the
# model with Torch-Pruning's `DependencyGraph`, scores each coupled group (the sum of L1 norms of the
# output weights of its convolutions) and removes the lowest `ratio` of every group.

# %%
# NBVAL_CHECK_OUTPUT
resnet_t = cl.zoo.pretrained("resnet8", "torch")
R["torch resnet8 fp32"] = cl.measure(resnet_t, data=(xt, yt), runs=30, name="resnet8 fp32")
struct_t = cl.prune(resnet_t, cl.Structured(0.5), example_input=xt[:1])
print("stem", struct_t.stem[0].out_channels, "| layer1.conv2", struct_t.layer1.conv2.out_channels,
      "| layer2", struct_t.layer2.conv2.out_channels, "| layer3", struct_t.layer3.conv2.out_channels,
      "| fc in", struct_t.fc.in_features)

# %% [markdown]
# Torch-Pruning's own `MetaPruner` beside it gives the same shapes (its default importance also reads the
# BatchNorm and the consumers' input weights, so it may pick other channels):

# %%
# NBVAL_CHECK_OUTPUT
import torch_pruning as tp
own_s = copy.deepcopy(resnet_t)
pruner = tp.pruner.MetaPruner(own_s, torch.from_numpy(xt[:1]), importance=tp.importance.MagnitudeImportance(p=1),
                              pruning_ratio=0.5, ignored_layers=[own_s.fc])
pruner.step()
print("same shapes:", [p.shape for p in own_s.parameters()] == [p.shape for p in struct_t.parameters()])

# %% [markdown]
# Removing half the channels of every group costs accuracy at once (BatchNorm statistics no longer
# match); a short fine-tune brings it back, here with the unpruned model as teacher (`teacher=`:
# knowledge distillation, see the theory page). One epoch on half the training digits keeps the
# chapter quick; `bench/pruning.py` fine-tunes for 20 epochs and reports the final figures.

# %%
print("before fine-tune: %.4f" % ttrain.evaluate(struct_t, (xt, yt)))
t0 = time.perf_counter()
ttrain.fit(struct_t, (train_t[0][:4000], train_t[1][:4000]), epochs=1, batch_size=128, lr=2e-3,
            teacher=resnet_t)
print("after 1 epoch: %.4f (%.1f s)" % (ttrain.evaluate(struct_t, (xt, yt)), time.perf_counter() - t0))
R["torch resnet8 structured 0.5"] = cl.measure(struct_t, data=(xt, yt), runs=30, name="structured 0.5")
cl.compare([R["torch resnet8 fp32"], R["torch resnet8 structured 0.5"]])

# %% [markdown]
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
cb = kpruning.GradualPruning(cl.Magnitude(0.9, scope="global",
                             schedule=PolynomialDecay(0.0, 0.9, 0, int(0.6 * steps), 25)), model_k)
t0 = time.perf_counter()
ktrain.fit(model_k, train_k, epochs=3, lr=1e-3, callbacks=[cb], lr_schedule="step")
gradual_k = cb.finalize(model_k)
print("gradual: sparsity %.3f, accuracy %.4f, fine-tune %.1f s" % (cb.sparsity, ktrain.evaluate(gradual_k, (xk, yk)), time.perf_counter() - t0))
R["keras zeros (.keras)"] = cl.measure(gradual_k, data=(xk, yk), runs=30, name="gradual 0.9 (zeros, .keras)")
r = copy.copy(R["keras zeros (.keras)"]); r.name = "gradual 0.9, packed .clz"
r.packed_bytes = cl.save(gradual_k, f"{tmp}/lenet_k.clz")
R["keras zeros, packed"] = r
back = cl.load(f"{tmp}/lenet_k.clz")
print("round trip identical:", np.array_equal(np.asarray(back(xk[:100])), np.asarray(gradual_k(xk[:100]))))
cl.compare([R["keras fp32"], R["keras zeros (.keras)"], R["keras zeros, packed"]])

# %% [markdown]
# The same sensitivity scan in Keras (the masks are the same as PyTorch's for the same weights):

# %%
curves_k = kpruning.sensitivity(lenet_k, (xk, yk), sparsities=scan_s)
plt.figure(figsize=(6, 3.2))
for name, acc in curves_k.items():
    plt.plot(scan_s, acc, marker="o", label=name)
plt.xlabel("sparsity of that layer"); plt.ylabel("accuracy"); plt.legend(); plt.title("Keras LeNet-300-100 sensitivity"); plt.show()

# %% [markdown]
# ### Structured pruning: compresslib's graph walk
#
# Nothing in the Keras 3 ecosystem removes channels from a functional model with residual additions, so
# compresslib walks the graph (`compresslib.keras.graph.analyse`): every Conv2D/Dense output starts a channel
# group; BatchNormalization, ReLU, ZeroPadding2D and pooling pass channels through; an `Add` unites the
# groups of its inputs; a Dense after `Flatten` loses the rows $(h W + w) C + c$ of every removed channel
# $c$. Groups that reach the model output stay whole. The groups of ResNet8:

# %%
# NBVAL_CHECK_OUTPUT
resnet_k = cl.zoo.pretrained("resnet8", "keras")
g = kgraph.analyse(resnet_k)
for root, producers in g.groups().items():
    print(("frozen " if g.is_frozen(root) else "prune  ") + " + ".join(producers))

# %%
# NBVAL_CHECK_OUTPUT
struct_k = cl.prune(resnet_k, cl.Structured(0.5))
print({l.name: tuple(l.kernel.shape) for l in struct_k.layers if hasattr(l, "kernel")})

# %%
R["keras resnet8 fp32"] = cl.measure(resnet_k, data=(xk, yk), runs=30, name="resnet8 fp32")
t0 = time.perf_counter()
ktrain.fit(struct_k, (train_k[0][:4000], train_k[1][:4000]), epochs=1, batch_size=128, lr=2e-3,
            teacher=resnet_k)
struct_k = kpruning.finalize(struct_k)            # a plain copy: without the optimizer state fit() attached
print("after 1 epoch: %.4f (%.1f s)" % (ktrain.evaluate(struct_k, (xk, yk)), time.perf_counter() - t0))
R["keras resnet8 structured 0.5"] = cl.measure(struct_k, data=(xk, yk), runs=30, name="structured 0.5")
cl.compare([R["keras resnet8 fp32"], R["keras resnet8 structured 0.5"]])


# %% [markdown]
# Parameters per layer, before and after structured pruning (the same in both frameworks: the channel
# choice is the same given the same weights, a parity test checks it):

# %%
def per_layer(rep):
    return {l.name: l.params for l in rep.layers if l.params and l.kind in ("Conv2d", "Linear", "Conv2D", "Dense")}
a, b = per_layer(R["keras resnet8 fp32"]), per_layer(R["keras resnet8 structured 0.5"])
names = list(a)
xs = np.arange(len(names))
plt.figure(figsize=(9, 3.2))
plt.bar(xs - 0.2, [a[n] for n in names], 0.4, label="fp32")
plt.bar(xs + 0.2, [b.get(n, 0) for n in names], 0.4, label="structured 0.5")
plt.xticks(xs, names, rotation=60, ha="right", fontsize=8); plt.ylabel("parameters"); plt.legend()
plt.title("Keras ResNet8: parameters per layer"); plt.tight_layout(); plt.show()

# %% [markdown]
# ## Side by side
#
# Every row measured above, against its own framework's fp32 model: masks and zeros leave bytes and latency
# where they were; packing shrinks the file; structured pruning shrinks parameters, MACs, bytes and time.

# %%
rows = []
for key, base in [("torch masks (nn.utils.prune)", "torch fp32"), ("torch zeros (state_dict)", "torch fp32"),
                  ("torch zeros, packed", "torch fp32"), ("torch resnet8 structured 0.5", "torch resnet8 fp32"),
                  ("keras zeros (.keras)", "keras fp32"), ("keras zeros, packed", "keras fp32"),
                  ("keras resnet8 structured 0.5", "keras resnet8 fp32")]:
    r, b = R[key], R[base]
    size = r.packed_bytes or r.file_bytes
    rows.append((key, b.file_bytes / size, b.latency_ms / r.latency_ms, 100 * (b.accuracy - r.accuracy), 1 - r.nonzero_params / b.params))
print(f"{'':32s} {'size ×':>7s} {'speed ×':>8s} {'acc drop pt':>11s} {'params gone':>11s}")
for k, s, v, d, p in rows:
    print(f"{k:32s} {s:7.2f} {v:8.2f} {d:11.2f} {p:11.2%}")
fig, ax = plt.subplots(1, 2, figsize=(11, 3.4))
labels = [k for k, *_ in rows]
ax[0].barh(labels, [s for _, s, *_ in rows]); ax[0].axvline(1, c="k", lw=0.8); ax[0].set_xlabel("size ratio (× smaller)")
ax[1].barh(labels, [v for _, _, v, *_ in rows], color="C1"); ax[1].axvline(1, c="k", lw=0.8); ax[1].set_xlabel("speedup (×)")
ax[1].set_yticks([]); plt.tight_layout(); plt.show()

# %% [markdown]
# The speedups come from measured time (median of runs at batch 32 on this machine's CPU threads), not
# from MAC counts. ResNet8 is small: at half the channels the fixed per-call cost of the framework weighs
# more in Keras (a traced `tf.function` call) than in PyTorch, so Keras needs a higher ratio (about 0.75) to
# reach a 2× speedup; `bench/pruning.py` measures both ratios after a proper fine-tune.
#
# A caution about the latency columns of *this* page: PyTorch's two OpenMP threads are very sensitive to
# anything else running on a 2-core machine (a notebook kernel, its front end, other jobs). A single
# slow measurement of the baseline, like a fp32 ResNet8 taking hundreds of milliseconds, inflates every
# speedup computed against it. Treat speedups far above the MAC ratio (3.95× for ResNet8 at 0.5) as
# such an artefact, and prefer `python bench/pruning.py`, which runs in a plain process, measures the
# baseline in the same run and warns when the machine was busy.
#
# ## Summary
#
# * Masks (`torch.nn.utils.prune`, tfmot) and zeros change neither the file nor the latency: dense storage
#   and dense kernels do not care what the numbers are.
# * Sparse encodings make zeros cost less than a value: a bitmask from ~3 % sparsity, CSR from 50 % (and
#   only best when almost empty); compresslib picks the smallest per tensor, and 90 % sparsity gives a
#   file about 8× smaller.
# * Global magnitude pruning with a gradual schedule and fine-tuning keeps LeNet-300-100's accuracy at 90 %
#   sparsity.
# * Structured pruning is the one that makes dense hardware faster: it removes channels, so parameters,
#   MACs, bytes and latency all fall — provided the channels coupled by residual additions are removed
#   together (Torch-Pruning's dependency graph; compresslib's graph walk for Keras 3).
#
# ## Exercises
#
# 1. Run the sensitivity scan on LeNet-5's convolutions. Which layer would you prune least?
# 2. Change `scope="global"` to `"layer"` at 90 % and compare accuracy after the same fine-tune.
# 3. From the formulas, at what sparsity does CSR with int16 column indices beat the bitmask for a 300×784 layer? Check with `packing.encode`.
# 4. Prune ResNet8 with `Structured(0.75)` and fine-tune; plot speedup against ratio for both frameworks.
# 5. Add a `Concatenate` to a small functional model and watch which groups `kgraph.analyse` freezes.

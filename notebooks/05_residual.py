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
# # 5. Residual models
#
# A shortcut, $y = \mathrm{ReLU}(F(x) + x)$, is what lets a network be deep enough to be
# accurate and still train. It does not make a model smaller — the seed article of this book
# lists residual networks as a compression technique, which they are not — but it shapes
# compression twice: *compact* architectures are residual (a small ResNet, MobileNetV2's
# inverted residual blocks), and every technique that edits layers must respect the
# additions (BatchNorm folding, structured pruning, int8 arithmetic).
#
# **What you will learn**
#
# * why shortcuts: plain and residual networks of equal depth trained on the same budget (the degradation problem), and gradient norms per layer;
# * the seed article's `residual_block` run as written, beside correct basic and bottleneck blocks;
# * the ResNet and inverted-residual families of `compresslib` in PyTorch and Keras, and `cl.transfer`, which moves one trained network between the frameworks;
# * compression by architecture: accuracy against parameters, MACs and measured latency, for small members trained alone and distilled from a teacher — on MNIST first, then on Fashion-MNIST's 10,000 test images with 95 % intervals and a paired test for every difference (the chapter's main result);
# * residual-aware compression — BatchNorm folding through shortcuts, structured pruning with coupled shortcut channels, int8 residual additions — each beside its naive version, failing.

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
import copy, json, os, statistics, time, warnings
from importlib import resources

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ.setdefault("CI", "1")
import numpy as np
import torch  # torch before tensorflow
from torch import nn
import tensorflow as tf

import keras
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
from IPython.display import Markdown, display
import compresslib as cl
cl.set_threads(None)  # all cores, in every framework and runtime (see the introduction)
from compresslib import notebook as nb
from compresslib.core import architectures as arch
from compresslib.torch import models as tm, train as ttrain
from compresslib.keras import models as km, train as ktrain

COLORS = nb.FRAMEWORK_COLORS
DEVICE = nb.device()
np.random.seed(0)
torch.manual_seed(0)
keras.utils.set_random_seed(0)
plt.rcParams.update(
    {
        "figure.dpi": 100,
        "font.size": 10,
        "axes.titlesize": 10,
        "legend.fontsize": 9,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
test_t = cl.datasets.load_mnist("test", layout="torch")
test_k = cl.datasets.load_mnist("test", layout="keras")
train_t = cl.datasets.load_mnist("train", layout="torch")
train_k = cl.datasets.load_mnist("train", layout="keras")
print(
    f"torch {torch.__version__} | keras {keras.__version__} | {cl.get_threads()} threads each | device"
    f" {DEVICE}"
)

# %% [markdown]
# ## The idea
#
# **Why shortcuts.** A plain network composes its layers, $x_{l+1} = f_l(x_l)$, so the gradient that
# reaches layer $l$ is a product of Jacobians, $\partial L/\partial x_l = \partial L/\partial x_L
# \prod_{k=l}^{L-1} \partial f_k/\partial x_k$. A residual block adds its input back,
# $x_{l+1} = \mathrm{ReLU}(F_l(x_l) + x_l)$, and the product becomes one of $(I + \partial F_k/\partial x_k)$
# (up to the ReLU): an identity path carries the gradient to every layer unchanged, whatever the
# branches do. He et al. (2016) found that deeper *plain* networks train to a **higher training
# error** than shallower ones — not overfitting, an optimisation difficulty — and that shortcuts
# remove it.
#
# **Blocks and their cost** (weights of the convolutions, $C$ channels, $k=3$):
#
# | block | layers | weights |
# |---|---|---|
# | basic | 3×3 $C\to C$, 3×3 $C\to C$ | $2\cdot 9C^2$ |
# | bottleneck (width $w$, output $4w$) | 1×1 $4w\to w$, 3×3 $w\to w$, 1×1 $w\to 4w$ | $4w^2 + 9w^2 + 4w^2 = 17w^2$ |
# | inverted residual (expansion $t$) | 1×1 $C\to tC$, depthwise 3×3, 1×1 $tC\to C'$ | $tC^2 + 9tC + tCC'$ |
#
# A bottleneck block with $4w = C$ costs $17C^2/16$ weights, about 17× less than a basic block
# of the same width; the inverted residual block (Sandler et al., 2018) turns it inside out:
# thin at the ends (where the shortcut is added) and wide inside, where a *depthwise* 3×3 costs
# $9tC$ rather than $9t^2C^2$.
#
# **Distillation** (Hinton et al., 2015) trains a small student on
# $(1-\alpha)\,\mathrm{CE}(y, z_s) + \alpha T^2\,\mathrm{KL}(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_s/T))$,
# the labels and the teacher's softened logits $z_t$.
#
# **What shortcuts impose on compression.** (1) *Folding* BatchNorm into the convolution before it,
# $W' = sW$, $b' = s(b-\mu)+\beta$ with $s = \gamma/\sqrt{\sigma^2+\epsilon}$, is exact only for the
# convolution whose output the BN normalises — in a residual graph that is not always the layer
# listed before it. (2) *Removing* channel $c$ from a branch that is added to a shortcut means removing
# it from the shortcut and from every other branch added to it: channels form coupled groups.
# (3) An *int8 addition* of $a \approx s_a(q_a - z_a)$ and $b \approx s_b(q_b - z_b)$ needs a
# requantisation to the output scale, $q_y = \mathrm{round}\big((s_a(q_a - z_a) + s_b(q_b - z_b))/s_y\big) + z_y$;
# adding the integers $q_a + q_b$ is wrong unless the scales agree. The long form is on the theory page
# *Residual models*.

# %% [markdown]
# ## From scratch in NumPy
#
# **The identity path.** Take $L$ random layers of width 64 at He initialisation and look at the singular
# values of the input–output Jacobian of the stack: plain, $J = \prod_l D_l W_l$, and residual,
# $J = \prod_l (I + D_l W_l / \sqrt{L})$ ($D_l$: the ReLU's 0/1 mask). A well-conditioned Jacobian passes
# every direction of the gradient through; a product of plain layers stretches a few directions and
# squashes the others, more with every layer.

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(0)
WIDTH = 64


def jacobian_singular_values(depth, residual):
    x = rng.normal(size=WIDTH)
    J = np.eye(WIDTH)
    for _ in range(depth):
        W = rng.normal(
            scale=np.sqrt(2 / WIDTH), size=(WIDTH, WIDTH)
        )  # He initialisation
        D = np.diag((W @ x > 0).astype(float))  # ReLU's derivative at this input
        step = np.eye(WIDTH) + D @ W / np.sqrt(depth) if residual else D @ W
        x = x + D @ W @ x / np.sqrt(depth) if residual else D @ W @ x
        J = step @ J
    return np.linalg.svd(J, compute_uv=False)


spread = {}
for depth in (8, 20, 32):
    for residual in (False, True):
        s = jacobian_singular_values(depth, residual)
        spread[depth, residual] = s
        print(
            f"depth {depth:2d} {'residual' if residual else 'plain   '}:"
            " largest/smallest non-zero singular value"
            f" {s[0] / s[s > 1e-12][-1]:10.3g}, {int((s > 1e-3 * s[0]).sum()):2d} of"
            f" {WIDTH} directions within 1e-3 of the largest"
        )

# %% tags=["remove-cell"]
nb.glue(
    "np_cond_plain32",
    float(spread[32, False][0] / spread[32, False][spread[32, False] > 1e-12][-1]),
)
nb.glue("np_cond_res32", float(spread[32, True][0] / spread[32, True][-1]))

# %% mystnb={"figure": {"caption": "Singular values of the input-output Jacobian of a random 64-wide ReLU stack, plain and residual, at three depths (log scale)."}, "image": {"alt": "Plain stacks: singular values spread over many orders of magnitude, more with depth. Residual stacks: all singular values stay within one order of magnitude of 1 at every depth."}}
fig, ax = plt.subplots(1, 2, figsize=(6.8, 2.8), sharey=True)
for i, residual in enumerate((False, True)):
    for depth, style in zip((8, 20, 32), ("-", "--", ":")):
        s = spread[depth, residual]
        ax[i].semilogy(s[s > 1e-12], style, color="k", label=f"depth {depth}")
    ax[i].set(title="residual" if residual else "plain", xlabel="index")
ax[0].set_ylabel("singular value")
ax[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# **An int8 addition.** Two activations with different ranges (a branch and its shortcut) are quantised
# with their own scales. Adding the integers as if they shared a scale is the naive version;
# requantising to the output's scale is the correct one.

# %% tags=["nbval-check-output"]
a = rng.normal(0, 1.0, 10_000).astype(np.float32)  # e.g. a branch output
b = rng.normal(0, 4.0, 10_000).astype(np.float32)  # e.g. the shortcut, 4x wider
scale = lambda v: float(np.abs(v).max() / 127)  # symmetric int8, zero-point 0
sa, sb, sy = scale(a), scale(b), scale(a + b)
qa, qb = np.round(a / sa).astype(np.int32), np.round(b / sb).astype(np.int32)
naive = (qa + qb) * sa  # integers added, one scale assumed
correct = np.clip(np.round((sa * qa + sb * qb) / sy), -128, 127) * sy
rel = lambda v: float(np.linalg.norm(v - (a + b)) / np.linalg.norm(a + b))
print(f"scales: a {sa:.4f}, b {sb:.4f}, a+b {sy:.4f}")
print(
    f"relative error of the sum: naive {rel(naive):.3f}, requantised {rel(correct):.4f}"
)

# %% tags=["remove-cell"]
nb.glue("np_add_naive", rel(naive))
nb.glue("np_add_correct", rel(correct))

# %% [markdown]
# The naive sum is off by {glue:text}`np_add_naive:.0%`, the requantised one by
# {glue:text}`np_add_correct:.2%` — the rounding error of int8 itself. PyTorch's quantized `add` and LiteRT's
# `ADD` kernel do the requantisation; the question below is whether a model's additions reach them.
#
# ## The seed article's block, run as written
#
# The article this book grew from (see the *Errata* page) defines its residual block in Keras:


# %%
def residual_block(
    input, num_filters, growth_rate, num_layers
):  # the seed article's code, unchanged
    # 构建残差模块
    res = tf.keras.layers.add([input, growth_rate])
    res = tf.keras.layers.BatchNormalization()(res)
    res = tf.keras.layers.ReLU()(res)

    # 构建残差链
    for i in range(num_layers):
        res = tf.keras.layers.BatchNormalization()(res)
        res = tf.keras.layers.ReLU()(res)

    # 将残差与输入连接
    res = tf.keras.layers.add([res, input])
    res = tf.keras.layers.BatchNormalization()(res)
    res = tf.keras.layers.ReLU()(res)

    return res


inputs = tf.keras.Input(shape=(224, 224, 3))
x = tf.keras.layers.Conv2D(32, (3, 3), activation="relu")(inputs)
x = tf.keras.layers.MaxPooling2D(pool_size=(2, 2))(x)
try:
    x = residual_block(x, 64, 32, 6)
except Exception as exc:  # what the article's reader gets
    seed_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    print(seed_error)

# %% [markdown]
# `growth_rate` is the integer 32, and `add` takes tensors. Even with the integer removed the block
# would hold no convolution (`num_filters` is never used): BatchNorm and ReLU repeated, nothing
# that could learn a residual. The correct blocks, in `compresslib.torch.models` and
# `compresslib.keras.models`, with the same layer names in both frameworks:


# %% tags=["nbval-check-output"]
def keras_block(block, c_in, width, stride):
    x = keras.Input((28, 28, c_in))
    return keras.Model(
        x, km.residual_block(x, width, stride, name="block", block=block)
    )


blocks = {
    ("basic", 16, 16, 1): tm.BasicBlock(16, 16, 1),
    ("basic", 16, 32, 2): tm.BasicBlock(16, 32, 2),
    ("bottleneck", 64, 16, 1): tm.Bottleneck(64, 16, 1),
    ("bottleneck", 64, 32, 2): tm.Bottleneck(64, 32, 2),
}
block_rows = []
for (kind, c_in, width, stride), tblock in blocks.items():
    kblock = keras_block(kind, c_in, width, stride)
    with torch.no_grad():
        t_out = tuple(tblock.eval()(torch.zeros(1, c_in, 28, 28)).shape[1:])
    t_params = sum(p.numel() for p in tblock.parameters())
    k_params = sum(int(np.prod(w.shape)) for w in kblock.trainable_weights)
    shortcut = (
        "1×1 conv + BN"
        if hasattr(tblock, "shortcut") and not isinstance(tblock.shortcut, nn.Identity)
        else "identity"
    )
    block_rows.append(
        f"| {kind} | {c_in} → {t_out[0]} | {stride} | {shortcut} | {t_params:,} |"
        f" {k_params:,} |"
    )
    assert t_params == k_params
display(
    Markdown(
        "| block | channels | stride | shortcut | torch weights | keras weights"
        " |\n|---|---|---|---|---|---|\n"
        + "\n".join(block_rows)
    )
)

# %% [markdown]
# ## The families, and one network in both frameworks
#
# `tm.resnet(depth, widths, block, plain)` and `tm.inverted_residual(width_mult)` (and the same in
# `km`) build the members; each has a name that `build` accepts in both frameworks (`resnet20_w16`,
# `resnet32_w16_plain`, `resnet11_w8_bottleneck`, `invres_x0.5`). `cl.transfer(model, framework=...)`
# returns the twin in the other framework with the same weights and BatchNorm statistics, so a
# network trained once can be compressed in both.

# %% tags=["nbval-check-output"]
MEMBERS = [
    "resnet8_w8",
    "resnet14_w8",
    "resnet11_w8_bottleneck",
    "invres_x0.5",
    "resnet8_w16",
    "resnet20_w16",
    "resnet32_w16",
    "resnet8_w64",
]
family_rows = []
for name in MEMBERS:
    r = cl.measure(
        tm.build(name), example_input=torch.zeros(1, 1, 28, 28), latency=False
    )
    family_rows.append((name, r.params, r.macs))
display(
    Markdown(
        "| member | parameters | MACs per digit |\n|---|---|---|\n"
        + "\n".join(f"| `{n}` | {p:,} | {m / 1e6:.1f} M |" for n, p, m in family_rows)
    )
)

# %%
resnet_t = cl.zoo.pretrained(
    "resnet8", framework="torch"
).eval()  # the shipped ResNet8, trained in PyTorch
resnet_k = cl.transfer(
    resnet_t, framework="keras"
)  # the same weights, as a Keras model
with torch.no_grad():
    logits_t = resnet_t(torch.as_tensor(test_t[0])).numpy()
logits_k = ktrain.predict(resnet_k, test_k[0])
transfer_diff = float(np.abs(logits_t - logits_k).max())
acc_t = float((logits_t.argmax(1) == test_t[1]).mean())
acc_k = float((logits_k.argmax(1) == test_k[1]).mean())
print(
    f"max |torch - keras| over 2,000 digits: {transfer_diff:.2e}; accuracy {acc_t:.4f}"
    f" (torch), {acc_k:.4f} (keras)"
)

# %% tags=["remove-cell"]
nb.glue("transfer_diff", transfer_diff)
nb.glue("resnet8_acc", acc_t)

# %% [markdown]
# The two models' logits agree to {glue:text}`transfer_diff:.1e` on every test digit. From here on the
# Keras ResNet8 of this chapter *is* the PyTorch one, so the frameworks compress the same weights.
# `transfer` refuses a model it cannot pair layer by layer and names the first layer that differs:

# %%
try:
    cl.transfer(
        tm.build("resnet20_w16"), framework="keras", like=km.build("resnet20_w16_plain")
    )
except ValueError as exc:
    print(exc)

# %% [markdown]
# ## PyTorch
#
# ### Why shortcuts: gradients at initialisation
#
# One batch of 128 digits through a 32-layer network, plain and residual, at initialisation: the norm of
# the loss gradient of every convolution's weights, from the stem to the last block.


# %%
def grad_norms_torch(model, x, y):
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(
        model(torch.as_tensor(x)), torch.as_tensor(y)
    ).backward()
    return {
        n: float(m.weight.grad.norm())
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and "shortcut" not in n
    }


xb, yb = train_t[0][:128], train_t[1][:128]
torch.manual_seed(0)
nets_t = {name: tm.build(name) for name in ("resnet32_w16_plain", "resnet32_w16")}
grads_t = {name: grad_norms_torch(m, xb, yb) for name, m in nets_t.items()}
for name, g in grads_t.items():
    v = np.array(list(g.values()))
    print(
        f"{name:20s}: {len(v)} convs, gradient norm first {v[0]:.3g}, last {v[-1]:.3g},"
        f" largest/smallest {v.max() / v.min():.1f}"
    )

# %% [markdown]
# ### Why shortcuts: plain against residual, same budget
#
# Training three depths, plain and residual, in both frameworks takes far longer than a chapter may.
# `scripts/residual_experiments.py` trained them once ({glue:text}`recipe_epochs` epochs on the 8,000 training
# digits, Adam, the same seed, batch size and learning-rate schedule for every network; the recipes are printed
# below) and wrote `compresslib/data/results/05_residual.json`, which this chapter loads. The budget is short on
# purpose: it measures how fast each network learns.
# `tests/torch/test_residual_cache.py` re-trains one member and checks that it reproduces the file.

# %%
CACHE = json.loads(
    resources.files("compresslib.data").joinpath("results/05_residual.json").read_text()
)
runs = CACHE["runs"]
print(
    "recipes:",
    CACHE["recipes"],
    "| teacher:",
    CACHE["teacher"],
    CACHE["teacher_recipe"],
)
DEPTHS = [
    d
    for d in (8, 20, 32)
    if all(
        f"{fw}/resnet{d}_w16{p}/alone" in runs
        for fw in ("torch", "keras")
        for p in ("", "_plain")
    )
]
deg_rows = []
for fw in ("torch", "keras"):
    for depth in DEPTHS:
        res, plain = (
            runs[f"{fw}/resnet{depth}_w16/alone"],
            runs[f"{fw}/resnet{depth}_w16_plain/alone"],
        )
        deg_rows.append(
            (
                fw,
                depth,
                res["loss"][-1],
                plain["loss"][-1],
                res["accuracy"],
                plain["accuracy"],
            )
        )
display(
    Markdown(
        "| framework | depth | final training loss, residual | plain | test accuracy,"
        " residual | plain |\n|---|---|---|---|---|---|\n"
        + "\n".join(
            f"| {fw} | {d} | {lr:.4f} | {lp:.4f} | {ar:.2%} | {ap:.2%} |"
            for fw, d, lr, lp, ar, ap in deg_rows
        )
    )
)
for fw, d, lr, lp, ar, ap in deg_rows:
    nb.glue(f"deg_{fw}_{d}_res", ar)
    nb.glue(f"deg_{fw}_{d}_plain", ap)
    nb.glue(f"deg_{fw}_{d}_loss_res", lr)
    nb.glue(f"deg_{fw}_{d}_loss_plain", lp)
lower_every_epoch = [
    (fw, d)
    for fw in ("torch", "keras")
    for d in DEPTHS
    if all(
        a < b
        for a, b in zip(
            runs[f"{fw}/resnet{d}_w16/alone"]["loss"],
            runs[f"{fw}/resnet{d}_w16_plain/alone"]["loss"],
        )
    )
]
deg_sentence = (
    "The residual network's training loss is below the plain network's after every"
    " epoch for "
    + (
        ", ".join(
            f"depth {d} in {'PyTorch' if fw == 'torch' else 'Keras'}"
            for fw, d in lower_every_epoch
        )
        or "no depth"
    )
    + f" (of depths {', '.join(map(str, DEPTHS))} in both frameworks)."
)
print(deg_sentence)

# %% tags=["remove-cell"]
nb.glue("recipe_epochs", CACHE["recipes"]["degradation"]["epochs"])
nb.glue("family_epochs", CACHE["recipes"]["family"]["epochs"])
nb.glue("teacher_epochs", CACHE["teacher_recipe"]["epochs"])
nb.glue("deg_sentence", deg_sentence)

# %% mystnb={"figure": {"caption": "Training loss (mean over each epoch, log scale) and test accuracy after each epoch, residual (solid) and plain (dashed) networks of depth 8, 20 and 32, in both frameworks, same budget (cached; see above)."}, "image": {"alt": "Four panels: training loss and test accuracy per epoch for PyTorch and Keras; lines for depth 8, 20 and 32, solid for residual and dashed for plain networks."}}
fig, ax = plt.subplots(2, 2, figsize=(6.8, 5.2), sharex=True)
for row, fw in enumerate(("torch", "keras")):
    for depth, shade in zip(DEPTHS, (0.75, 0.45, 0.0)[-len(DEPTHS) :]):
        for plain in (False, True):
            r = runs[f"{fw}/resnet{depth}_w16{'_plain' if plain else ''}/alone"]
            epochs = np.arange(1, len(r["loss"]) + 1)
            kw = dict(
                color=(shade, shade, shade),
                ls="--" if plain else "-",
                label=f"{depth} {'plain' if plain else 'residual'}",
            )
            ax[row, 0].semilogy(epochs, r["loss"], **kw)
            ax[row, 1].plot(epochs, 100 * np.array(r["test_accuracy"]), **kw)
    ax[row, 0].set(ylabel=f"{fw}\ntraining loss")
    ax[row, 1].set(ylabel="test accuracy (%)")
    ax[row, 1].set_ylim(
        max(
            80,
            100
            * min(
                min(r["test_accuracy"]) for r in runs.values() if r["mode"] == "alone"
            )
            - 0.5,
        ),
        100,
    )
ax[1, 0].set_xlabel("epoch")
ax[1, 1].set_xlabel("epoch")
ax[0, 1].legend(ncol=2, fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# {glue:text}`deg_sentence` At depth 32 the residual network ends with training loss
# {glue:text}`deg_torch_32_loss_res:.3f` against {glue:text}`deg_torch_32_loss_plain:.3f` for the plain one in PyTorch, and
# {glue:text}`deg_keras_32_loss_res:.3f` against {glue:text}`deg_keras_32_loss_plain:.3f` in Keras (test accuracy
# {glue:text}`deg_torch_32_res:.2%` against {glue:text}`deg_torch_32_plain:.2%`, and {glue:text}`deg_keras_32_res:.2%`
# against {glue:text}`deg_keras_32_plain:.2%`). That is the degradation problem at small scale: BatchNorm and Adam keep
# the plain networks trainable, and the gap is in how fast they learn, which is what a fixed budget measures. Test
# accuracy after so few epochs is the noisier measure: the BatchNorm running averages used at test time still lag
# behind weights that change quickly.
#
# ### Compression by architecture: small members, alone and distilled
#
# (On MNIST, as a first look: most differences below are within the noise of 2,000 digits. The
# chapter's main result, on Fashion-MNIST with a paired test for every difference, follows the
# Keras section.)
#
# The teacher is the 20-layer residual network `resnet20_w16`, trained for {glue:text}`teacher_epochs` epochs (it is in
# the zoo: `cl.zoo.pretrained("resnet20_w16")` trains it once and caches it). Each small member is trained twice for
# {glue:text}`family_epochs` epochs: alone, and distilled from the teacher with `fit(student, data, teacher=teacher)`
# (cached as above). Accuracy,
# parameters and MACs come from those runs; the latency is measured here, now, for every member in
# interleaved rounds (batch 32, all cores), because a one-shot timing of the same model swings ±15 %
# on a quiet machine.

# %%
from compresslib.timing import (
    interleaved_latency,
)  # the one timer of every bench and chapter


def interleaved(models, example):
    """Median ms per model: 3 rounds in which every model runs 10 times in turn (a
    shorter run than the benches)."""
    return interleaved_latency(models, example, rounds=3, runs=10)


STUDENTS = CACHE["students"]
TEACHER = CACHE["teacher"]
lat_t = interleaved(
    {n: tm.build(n).eval() for n in STUDENTS + [TEACHER]}, test_t[0][:32]
)


def arch_table(fw, lat):
    teacher = runs[f"{fw}/{TEACHER}/teacher"]
    rows = []
    for n in STUDENTS:
        alone, dist = runs[f"{fw}/{n}/alone"], runs[f"{fw}/{n}/distilled"]
        rows.append(
            {
                "member": n,
                "params": alone["params"],
                "macs": alone["macs"],
                "latency_ms": lat[n],
                "alone": alone["accuracy"],
                "distilled": dist["accuracy"],
                "params_ratio": teacher["params"] / alone["params"],
                "speedup": lat[TEACHER] / lat[n],
            }
        )
    return teacher, rows


def show_arch(fw, teacher, rows, lat):
    head = (
        "| member | params | teacher ÷ params | MACs | ms / 32 digits | speedup | alone"
        " | distilled |\n|---|---|---|---|---|---|---|---|\n"
    )
    body = [
        f"| `{TEACHER}` (teacher) | {teacher['params']:,} | 1 |"
        f" {teacher['macs'] / 1e6:.1f} M | {lat[TEACHER]:.2f} | 1.00× |"
        f" {teacher['accuracy']:.2%} | |"
    ]
    body += [
        f"| `{r['member']}` | {r['params']:,} | {r['params_ratio']:.1f} |"
        f" {r['macs'] / 1e6:.1f} M | {r['latency_ms']:.2f} | {r['speedup']:.2f}× |"
        f" {r['alone']:.2%} | {r['distilled']:.2%} |"
        for r in rows
    ]
    display(Markdown(head + "\n".join(body)))


def macs_sentence(fw, rows):
    fewest, fastest = min(rows, key=lambda r: r["macs"]), min(
        rows, key=lambda r: r["latency_ms"]
    )
    if fewest is fastest:
        return (
            f"In {fw}, the member with the fewest MACs, `{fewest['member']}`, is also"
            " the fastest here; the others do not follow their MACs exactly."
        )
    return (
        f"In {fw}, the member with the fewest MACs, `{fewest['member']}`"
        f" ({fewest['macs'] / 1e6:.1f} M), is not the fastest: `{fastest['member']}`"
        f" ({fastest['macs'] / 1e6:.1f} M) runs in {fastest['latency_ms']:.2f} ms"
        f" against {fewest['latency_ms']:.2f} ms."
    )


teacher_t, arch_t = arch_table("torch", lat_t)
show_arch("torch", teacher_t, arch_t, lat_t)
print(f"load average while timing: {os.getloadavg()[0]:.1f}")

# %% tags=["remove-cell"]
nb.glue("macs_sentence_torch", macs_sentence("PyTorch", arch_t))


# %%
def pareto(fw, teacher, rows, lat):
    fig, ax = plt.subplots(1, 3, figsize=(6.8, 3.2), sharey=True)
    for a, key, label in zip(
        ax,
        ("params", "macs", "latency_ms"),
        ("parameters", "MACs per digit", "ms per 32 digits"),
    ):
        t_x = {
            "params": teacher["params"],
            "macs": teacher["macs"],
            "latency_ms": lat[TEACHER],
        }[key]
        a.scatter(
            [t_x],
            [100 * teacher["accuracy"]],
            marker="*",
            s=120,
            color="k",
            label="teacher",
        )
        for r in rows:
            a.plot(
                [r[key]] * 2,
                [100 * r["alone"], 100 * r["distilled"]],
                color=COLORS[fw],
                lw=0.8,
                alpha=0.6,
            )
        a.scatter(
            [r[key] for r in rows],
            [100 * r["alone"] for r in rows],
            facecolors="none",
            edgecolors=COLORS[fw],
            label="alone",
        )
        a.scatter(
            [r[key] for r in rows],
            [100 * r["distilled"] for r in rows],
            color=COLORS[fw],
            label="distilled",
        )
        a.set(xscale="log", xlabel=label)
        # ticks at 1-2-5 steps in short units; no minor labels (they overprinted on the
        # narrow log axes)
        a.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        a.xaxis.set_major_formatter(mticker.EngFormatter(sep=""))
        a.xaxis.set_minor_formatter(mticker.NullFormatter())
    mid = np.median([r["latency_ms"] for r in rows])
    for (
        r
    ) in (
        rows
    ):  # names left of the points in the right half, so none runs off the figure
        right = r["latency_ms"] > mid
        ax[2].annotate(
            r["member"].replace("_bottleneck", "_b"),
            (r["latency_ms"], 100 * r["distilled"]),
            fontsize=9,
            xytext=(-4 if right else 4, 3),
            textcoords="offset points",
            ha="right" if right else "left",
        )
    ax[0].set_ylabel(f"{fw}: test accuracy (%)")
    handles, labels = ax[
        0
    ].get_legend_handles_labels()  # below the panels, not over the points
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    plt.tight_layout(rect=(0, 0.1, 1, 1))
    plt.show()


# %% mystnb={"figure": {"caption": "PyTorch: test accuracy against parameters, MACs and measured latency (batch 32, all cores) for the small members, trained alone (open) and distilled from the teacher (filled); the star is the teacher."}, "image": {"alt": "Three panels sharing the accuracy axis; each small member has an open and a filled marker joined by a line (the filled one above it where distillation helped); the teacher sits top right."}}
pareto("torch", teacher_t, arch_t, lat_t)

# %% [markdown]
# Read the table by rows: a member that is both small and fast (a large "teacher ÷ params" and "speedup")
# and whose distilled accuracy is close to the teacher's is what compression by architecture is after.
# {glue:md}`macs_sentence_torch` MACs count arithmetic; a depthwise convolution does little arithmetic per
# byte it moves, and every layer costs a fixed overhead per call, which the count does not see.
#
# ### Residual-aware compression in PyTorch
#
# The trained ResNet8 from above, compressed three ways, each beside its naive version.
#
# **1. BatchNorm folding through shortcuts.** `cl.fold_batchnorm` reads which layer feeds each BN from the
# `torch.fx` graph, the shortcut's 1×1 conv included:

# %% tags=["nbval-check-output"]
folded_t = cl.fold_batchnorm(resnet_t)
with torch.no_grad():
    fold_logits_t = folded_t(torch.as_tensor(test_t[0])).numpy()
fold_rel_t = float(np.abs(fold_logits_t - logits_t).max() / np.abs(logits_t).max())
fold_same_t = bool((fold_logits_t.argmax(1) == logits_t.argmax(1)).all())
print(
    "BatchNorm layers:"
    f" {sum(isinstance(m, nn.BatchNorm2d) for m in resnet_t.modules())} ->"
    f" {sum(isinstance(m, nn.BatchNorm2d) for m in folded_t.modules())}; max logit"
    f" difference / max logit {fold_rel_t:.1e}; same predictions on all 2,000 digits:"
    f" {fold_same_t}"
)


# %% [markdown]
# The naive version folds each BN into the convolution *listed* before it. In this ResNet8 the list happens
# to follow the data (each block defines `conv1, bn1, conv2, bn2, shortcut`), so it works — by luck. The same
# trained network written with each block's convolutions defined before its BatchNorms (same `forward`, same
# `state_dict`, same outputs) folds wrongly:


# %% tags=["nbval-check-output"]
def naive_fold_torch(model):
    """Fold every BN into the last Conv2d/Linear seen before it in module order (no
    graph)."""
    m = copy.deepcopy(model).eval()
    prev = None
    with torch.no_grad():
        for _, mod in m.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                prev = mod
            elif isinstance(mod, nn.BatchNorm2d) and prev is not None:
                s = mod.weight / torch.sqrt(mod.running_var + mod.eps)
                prev.weight.mul_(s.reshape(-1, *([1] * (prev.weight.dim() - 1))))
                shift = (
                    mod.bias
                    - mod.running_mean * s
                    + (s * prev.bias if prev.bias is not None else 0)
                )
                if prev.bias is not None:
                    prev.bias.zero_()
                # the BN becomes "add the folded shift": weight 1, mean 0, variance 1 -
                # eps
                mod.weight.fill_(1.0)
                mod.bias.copy_(shift)
                mod.running_mean.zero_()
                mod.running_var.fill_(1 - mod.eps)
    return m


class ConvsFirst(tm.BasicBlock):
    """A BasicBlock with the same forward and state_dict, its modules registered
    convolutions first."""

    def __init__(self, block):
        nn.Module.__init__(self)
        self.residual = True
        self.conv1, self.conv2, self.bn1, self.bn2 = (
            block.conv1,
            block.conv2,
            block.bn1,
            block.bn2,
        )
        self.relu1, self.shortcut, self.relu2 = block.relu1, block.shortcut, block.relu2


reordered_t = copy.deepcopy(resnet_t)
for name in ("layer1", "layer2", "layer3"):
    setattr(reordered_t, name, ConvsFirst(getattr(reordered_t, name)))
print(
    "reordered copy: same outputs as the original:"
    f" {np.array_equal(ttrain.predict(reordered_t, test_t[0]), logits_t)}"
)
naive_fold_acc_t = ttrain.evaluate(naive_fold_torch(reordered_t), test_t)
print(
    f"naive fold: {ttrain.evaluate(naive_fold_torch(resnet_t), test_t):.2%} (definition"
    f" order), {naive_fold_acc_t:.2%} (convolutions defined first); cl.fold_batchnorm:"
    f" {ttrain.evaluate(cl.fold_batchnorm(reordered_t), test_t):.2%} for both"
)

# %% tags=["remove-cell"]
nb.glue("naive_fold_acc_t", naive_fold_acc_t)

# %% [markdown]
# The seed article's own layout puts a BatchNorm *after* the addition. No single convolution produces its
# input, so there is nothing to fold it into; `cl.fold_batchnorm` folds what it can, leaves that BN, and says so
# once, naming it:


# %%
class SeedLayoutBlock(nn.Module):
    """conv-BN-ReLU-conv, then the addition, then BN and ReLU (the seed article's
    order)."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(
            c, c, 3, padding=1, bias=False
        ), nn.BatchNorm2d(c)
        self.conv2, self.bn_after_add = nn.Conv2d(
            c, c, 3, padding=1, bias=False
        ), nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(self.bn_after_add(out + x))


seed_layout = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1, bias=False),
    nn.BatchNorm2d(16),
    nn.ReLU(),
    SeedLayoutBlock(16),
    nn.AdaptiveAvgPool2d(1),
    nn.Flatten(),
    nn.Linear(16, 10),
).eval()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    seed_folded = cl.fold_batchnorm(seed_layout)
print(*[str(w.message) for w in caught if "fold_batchnorm" in str(w.message)])
print(
    "BatchNorms left:",
    [n for n, m in seed_folded.named_modules() if isinstance(m, nn.BatchNorm2d)],
    "| same outputs:",
    np.allclose(
        ttrain.predict(seed_folded, test_t[0][:64]),
        ttrain.predict(seed_layout, test_t[0][:64]),
        atol=1e-5,
    ),
)

# %% [markdown]
# **2. Structured pruning with coupled shortcut channels.** `cl.prune(model, cl.Structured(0.5))` removes half
# of the channels of every group (Torch-Pruning's dependency graph finds the groups): the stem, the two
# blocks of `layer1` and their identity shortcut share one group, so they lose the *same* channels.
# One distilled epoch on 4,000 digits follows. The naive version removes the weakest half of one convolution's
# filters on its own:

# %% tags=["nbval-check-output"]
pruned_t = cl.prune(
    resnet_t, cl.Structured(0.5), example_input=torch.zeros(1, 1, 28, 28)
)
print(
    "output channels after pruning:",
    {
        n: m.out_channels
        for n, m in pruned_t.named_modules()
        if isinstance(m, nn.Conv2d)
        and n in ("stem.0", "layer1.conv2", "layer2.conv2", "layer2.shortcut.0")
    },
)
pruned_acc_before_t = ttrain.evaluate(pruned_t, test_t)
pruned_ft_t = copy.deepcopy(pruned_t)
ttrain.fit(
    pruned_ft_t,
    (train_t[0][:4000], train_t[1][:4000]),
    epochs=1,
    batch_size=64,
    lr=1e-3,
    teacher=resnet_t,
)
pruned_acc_t = ttrain.evaluate(pruned_ft_t, test_t)
print(
    f"accuracy: {acc_t:.2%} -> {pruned_acc_before_t:.2%} pruned -> {pruned_acc_t:.2%}"
    " after one distilled epoch on 4,000 digits"
)

naive_prune_t = copy.deepcopy(resnet_t)
keep = (
    naive_prune_t.layer1.conv2.weight.detach()
    .abs()
    .sum((1, 2, 3))
    .argsort(descending=True)[:8]
    .sort()
    .values
)
with torch.no_grad():
    conv, bn = naive_prune_t.layer1.conv2, naive_prune_t.layer1.bn2
    naive_prune_t.layer1.conv2 = nn.Conv2d(16, 8, 3, padding=1, bias=False)
    naive_prune_t.layer1.conv2.weight.copy_(conv.weight[keep])
    naive_prune_t.layer1.bn2 = nn.BatchNorm2d(8).eval()
    for attr in ("weight", "bias", "running_mean", "running_var"):
        getattr(naive_prune_t.layer1.bn2, attr).copy_(getattr(bn, attr)[keep])
try:
    naive_prune_t(torch.as_tensor(test_t[0][:2]))
except RuntimeError as exc:
    prune_error_t = str(exc).splitlines()[0]
    print("naive:", prune_error_t)

# %% [markdown]
# Chapter 3 prunes the same shipped ResNet8 with the same `Structured(0.5)` and ends lower
# ({glue:text}`03_pruning.ipynb::t_struct_after:.2f` %). The pruned model is the same; the fine-tune is not:
# chapter 3 takes 32 steps of batch 128 at learning rate 2e-3, this one 63 steps of batch 64 at 1e-3, on the
# same 4,000 digits with the same teacher. Chapter 3's recipe, run here on a copy of the same pruned model:

# %% tags=["hide-input"]
ch3_recipe_t = copy.deepcopy(pruned_t)
ttrain.fit(
    ch3_recipe_t,
    (train_t[0][:4000], train_t[1][:4000]),
    epochs=1,
    batch_size=128,
    lr=2e-3,
    teacher=resnet_t,
)
ch3_acc_t = ttrain.evaluate(ch3_recipe_t, test_t)
# two standard errors of the difference of two accuracies on the same 2,000 digits
# (unpaired, so generous)
noise_pt = (
    200
    * (
        (pruned_acc_t * (1 - pruned_acc_t) + ch3_acc_t * (1 - ch3_acc_t))
        / len(test_t[1])
    )
    ** 0.5
)
gap_pt = 100 * (pruned_acc_t - ch3_acc_t)
if gap_pt > noise_pt:
    verdict = (
        f"{gap_pt:.1f} pt below this chapter's recipe, more than the {noise_pt:.1f} pt"
        " that two standard errors allow: the fine-tune, not the pruning, makes the"
        " difference"
    )
elif gap_pt < -noise_pt:
    verdict = (
        f"{-gap_pt:.1f} pt above this chapter's recipe in this run: the gap to chapter"
        " 3 is the spread of a one-epoch fine-tune, not a property of either recipe"
    )
else:
    verdict = (
        f"within {noise_pt:.1f} pt (two standard errors) of this chapter's recipe in"
        " this run: the gap to chapter 3 is the spread of a one-epoch fine-tune, not"
        " the pruning"
    )
ch3_sentence = f"Chapter 3's fine-tune reaches {ch3_acc_t:.2%} here, {verdict}."

# %% tags=["remove-cell"]
nb.glue("ch3_recipe_sentence", ch3_sentence)
nb.glue("pruned_acc_t", pruned_acc_t)

# %% [markdown]
# {glue:text}`ch3_recipe_sentence`
#
# %% [markdown]
# **3. int8 residual additions.** `cl.quantize(model, cl.Int8Static())` uses PyTorch's FX graph mode, which
# turns each `out + shortcut(x)` into a quantized add with its own output scale. The naive version —
# eager mode, `QuantStub`/`DeQuantStub` around the float model, the documented recipe for a model
# without residuals — converts the convolutions but leaves the `+` a float operator on int8 tensors:

# %% tags=["nbval-check-output"]
int8_t = cl.quantize(resnet_t, cl.Int8Static(), calibration_data=train_t[0][:256])
int8_acc_t = ttrain.evaluate(int8_t, test_t)
adds = [
    n for n in int8_t.graph.nodes if n.op == "call_function" and "add" in str(n.target)
]
print(
    f"int8 (FX): accuracy {int8_acc_t:.2%} ({acc_t:.2%} in float); residual additions"
    f" in the graph: {len(adds)} x {sorted({str(n.target) for n in adds})}"
)

import torch.ao.quantization as tq


class Stubbed(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.quant, self.model, self.dequant = tq.QuantStub(), model, tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.model(self.quant(x)))


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
    eager = Stubbed(copy.deepcopy(resnet_t)).eval()
    eager.qconfig = tq.get_default_qconfig("x86")
    tq.prepare(eager, inplace=True)
    eager(torch.as_tensor(train_t[0][:256]))
    tq.convert(eager, inplace=True)
    try:
        eager(torch.as_tensor(test_t[0][:2]))
    except NotImplementedError as exc:
        int8_error_t = str(exc).splitlines()[0]
        print("naive (eager):", int8_error_t)

# %% [markdown]
# Eager mode needs every addition rewritten as `torch.ao.nn.quantized.FloatFunctional().add` by hand;
# FX graph mode finds them. Now the speed of all four PyTorch models, timed in interleaved rounds:

# %%
speed_t = interleaved(
    {
        "fp32": resnet_t,
        "fold": folded_t,
        "pruned 0.5 + ft + fold": cl.fold_batchnorm(pruned_ft_t),
        "int8": int8_t,
    },
    test_t[0][:32],
)
for k, v in speed_t.items():
    print(f"{k:24s} {v:6.2f} ms  {speed_t['fp32'] / v:4.2f}x")
print(f"load average: {os.getloadavg()[0]:.1f}")

# %% [markdown]
# ## Keras
#
# ### Gradients at initialisation, on the same weights
#
# The two 32-layer networks from the PyTorch section, moved to Keras with `cl.transfer`, on the same batch
# (training-mode BatchNorm uses the batch's statistics in both frameworks).


# %%
def grad_norms_keras(model, x, y):
    convs = [
        l
        for l in model.layers
        if type(l).__name__ == "Conv2D" and "shortcut" not in l.name
    ]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                y, model(x, training=True), from_logits=True
            )
        )
    grads = tape.gradient(loss, [l.kernel for l in convs])
    return {l.name: float(tf.norm(g)) for l, g in zip(convs, grads)}


xk = train_k[0][:128]
grads_k = {
    name: grad_norms_keras(cl.transfer(m, framework="keras"), xk, yb)
    for name, m in nets_t.items()
}
grad_diff = {}
for name in grads_k:
    t, k = np.array(list(grads_t[name].values())), np.array(
        [grads_k[name][n] for n in grads_t[name]]
    )
    grad_diff[name] = float(np.abs(k - t).max() / t.max())
    print(
        f"{name:20s}: largest/smallest {k.max() / k.min():.1f}; max difference to"
        f" PyTorch / largest norm {grad_diff[name]:.1e}"
    )
g_plain, g_res = (
    np.array(list(grads_t[n].values())) for n in ("resnet32_w16_plain", "resnet32_w16")
)

# %% tags=["remove-cell"]
nb.glue("grad_diff_plain", grad_diff["resnet32_w16_plain"])
nb.glue("grad_diff_res", grad_diff["resnet32_w16"])
nb.glue("grad_ratio_plain", float(g_plain.max() / g_plain.min()))
nb.glue("grad_ratio_res", float(g_res.max() / g_res.min()))

# %% mystnb={"figure": {"caption": "Gradient norm of every convolution's weights (stem to last block) at initialisation, one batch of 128 digits, 32-layer plain and residual networks; lines PyTorch, markers Keras on the same weights."}, "image": {"alt": "Two lines per panel on a log scale; the plain network's gradient norms vary over a wider range across the layers than the residual network's; Keras markers lie on the PyTorch lines."}}
fig, ax = plt.subplots(1, 2, figsize=(6.8, 2.8), sharey=True)
for a, name in zip(ax, ("resnet32_w16_plain", "resnet32_w16")):
    names = list(grads_t[name])
    a.semilogy(
        range(len(names)),
        list(grads_t[name].values()),
        color=COLORS["torch"],
        label="PyTorch",
    )
    a.semilogy(
        range(len(names)),
        [grads_k[name][n] for n in names],
        "o",
        ms=3,
        color=COLORS["keras"],
        label="Keras",
    )
    a.set(title=name, xlabel="convolution (input to output)")
ax[0].set_ylabel("gradient norm")
ax[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# In the plain network the gradient norms differ by a factor {glue:text}`grad_ratio_plain:.0f` from layer to layer,
# in the residual one by {glue:text}`grad_ratio_res:.0f`. Keras agrees with PyTorch up to float rounding: the largest
# difference is {glue:text}`grad_diff_res:.1e` of the largest norm for the residual network and
# {glue:text}`grad_diff_plain:.1e` for the plain one, whose long product of Jacobians amplifies rounding differences
# as it amplifies everything else. (The training curves of the Keras networks are in the
# figure of the PyTorch section.)
#
# ### Compression by architecture
#
# The same members, trained in Keras alone and distilled from the *same* teacher moved to Keras with
# `cl.transfer` (cached, as above); latency measured now.

# %%
lat_k = interleaved({n: km.build(n) for n in STUDENTS + [TEACHER]}, test_k[0][:32])
teacher_k, arch_k = arch_table("keras", lat_k)
show_arch("keras", teacher_k, arch_k, lat_k)
print(f"load average while timing: {os.getloadavg()[0]:.1f}")

# %% tags=["remove-cell"]
nb.glue("macs_sentence_keras", macs_sentence("Keras", arch_k))

# %% mystnb={"figure": {"caption": "Keras: test accuracy against parameters, MACs and measured latency (batch 32, all cores) for the small members, trained alone (open) and distilled from the teacher (filled); the star is the teacher."}, "image": {"alt": "Three panels sharing the accuracy axis, as for PyTorch, in the Keras colour."}}
pareto("keras", teacher_k, arch_k, lat_k)


# %% [markdown]
# {glue:md}`macs_sentence_keras`
#
# ### Residual-aware compression in Keras
#
# **1. Folding.** `cl.fold_batchnorm` reads the pairs from the functional graph. The naive loop over
# `model.layers` does not: Keras lists layers in *topological* order, and in a block whose shape changes the
# shortcut's 1×1 convolution (it reads the block's input) is listed before the block's second BatchNorm:


# %% tags=["nbval-check-output"]
def naive_fold_keras(model):
    """Fold every BN into the last Conv2D/Dense before it in ``model.layers`` (no
    graph)."""
    out = keras.models.clone_model(model)
    out.set_weights(model.get_weights())
    prev, pairs = None, []
    for layer in out.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Dense"):
            prev = layer
        elif kind == "BatchNormalization" and prev is not None:
            pairs.append((prev.name, layer.name))
            gamma, beta, mean, var = (np.asarray(w) for w in layer.get_weights())
            s = gamma / np.sqrt(var + layer.epsilon)
            prev.kernel.assign(np.asarray(prev.kernel) * s)
            bias = np.asarray(prev.bias) * s if prev.use_bias else 0.0
            if prev.use_bias:
                prev.bias.assign(np.zeros_like(bias))
            layer.set_weights(
                [
                    np.ones_like(gamma),
                    beta - mean * s + bias,
                    np.zeros_like(mean),
                    np.ones_like(var) - layer.epsilon,
                ]
            )
    return out, pairs


from compresslib.keras.fold import batchnorm_pairs

naive_k, naive_pairs = naive_fold_keras(resnet_k)
graph_pairs, _ = batchnorm_pairs(resnet_k)
print("pairs the naive loop gets wrong:", sorted(set(naive_pairs) - set(graph_pairs)))
folded_k = cl.fold_batchnorm(resnet_k)
fold_logits_k = ktrain.predict(folded_k, test_k[0])
fold_rel_k = float(np.abs(fold_logits_k - logits_k).max() / np.abs(logits_k).max())
fold_same_k = bool((fold_logits_k.argmax(1) == logits_k.argmax(1)).all())
naive_fold_acc_k = ktrain.evaluate(naive_k, test_k)
print(
    f"cl.fold_batchnorm: max logit difference / max logit {fold_rel_k:.1e}, same"
    f" predictions: {fold_same_k}"
)
print(f"accuracy {acc_k:.2%}; naive fold {naive_fold_acc_k:.2%}")

# %% tags=["remove-cell"]
nb.glue("naive_fold_acc_k", naive_fold_acc_k)

# %% [markdown]
# **2. Structured pruning.** `cl.prune(model, cl.Structured(0.5))` walks the functional graph
# (`compresslib.keras.graph`): an `Add` unites the channel groups of its inputs. The naive version gives one
# convolution fewer filters on its own, and Keras refuses to build the addition:

# %% tags=["nbval-check-output"]
pruned_k = cl.prune(resnet_k, cl.Structured(0.5))
print(
    "filters after pruning:",
    {
        n: pruned_k.get_layer(n).filters
        for n in ("stem_conv", "layer1_conv2", "layer2_conv2", "layer2_sc_conv")
    },
)
pruned_ft_k = keras.models.clone_model(pruned_k)
pruned_ft_k.set_weights(pruned_k.get_weights())
ktrain.fit(
    pruned_ft_k,
    (train_k[0][:4000], train_k[1][:4000]),
    epochs=1,
    batch_size=64,
    lr=1e-3,
    teacher=resnet_k,
)
pruned_acc_k = ktrain.evaluate(pruned_ft_k, test_k)
print(
    f"accuracy: {acc_k:.2%} -> {ktrain.evaluate(pruned_k, test_k):.2%} pruned ->"
    f" {pruned_acc_k:.2%} after one distilled epoch"
)


def halve_layer1_conv2(layer):
    config = layer.get_config()
    if layer.name == "layer1_conv2":
        config["filters"] //= 2
    return layer.__class__.from_config(config)


try:
    keras.models.clone_model(resnet_k, clone_function=halve_layer1_conv2)
except ValueError as exc:
    prune_error_k = str(exc).splitlines()[0]
    print("naive:", prune_error_k)

# %% [markdown]
# **3. int8 residual additions.** `cl.quantize(model, cl.Int8Static())` converts the Keras model with LiteRT
# (full integer: int8 convolutions *and* additions, each with its requantisation). The naive version is the
# integer sum from the NumPy section, put in place of every `Add` layer of the float model, with each input's
# scale calibrated on 256 digits; beside it the same layer with the requantisation:

# %%
int8_k = cl.quantize(resnet_k, cl.Int8Static(), calibration_data=train_k[0][:256])
int8_acc_k = ktrain.evaluate(int8_k, test_k)
print(f"LiteRT int8: accuracy {int8_acc_k:.2%} ({acc_k:.2%} in float)")

from compresslib.keras.rebuild import rebuild

add_layers = [l for l in resnet_k.layers if type(l).__name__ == "Add"]
probe = keras.Model(
    resnet_k.inputs[0],
    [t for l in add_layers for t in l.input] + [l.output for l in add_layers],
)
calib = [np.asarray(v) for v in probe(train_k[0][:256])]
n_add = len(add_layers)
scales = {
    l.name: (
        [
            float(np.abs(calib[2 * i]).max()) / 127,
            float(np.abs(calib[2 * i + 1]).max()) / 127,
        ],
        float(np.abs(calib[2 * n_add + i]).max()) / 127,
    )
    for i, l in enumerate(add_layers)
}


class Int8Add(keras.layers.Layer):
    """Each input rounded to int8 with its own scale; summed naively (integers) or
    requantised."""

    def __init__(self, in_scales, out_scale, naive, **kwargs):
        super().__init__(**kwargs)
        self.in_scales, self.out_scale, self.naive = in_scales, out_scale, naive

    def call(self, inputs):
        q = [
            keras.ops.clip(keras.ops.round(v / s), -127, 127)
            for v, s in zip(inputs, self.in_scales)
        ]
        if self.naive:
            return (q[0] + q[1]) * self.in_scales[0]
        total = q[0] * self.in_scales[0] + q[1] * self.in_scales[1]
        return (
            keras.ops.clip(keras.ops.round(total / self.out_scale), -127, 127)
            * self.out_scale
        )


def with_int8_adds(naive):
    return rebuild(
        resnet_k,
        {
            l.name: lambda layer, naive=naive: (
                lambda inputs: Int8Add(*scales[layer.name], naive, name=layer.name)(
                    inputs
                )
            )
            for l in add_layers
        },
    )


add_naive_acc_k, add_correct_acc_k = (
    ktrain.evaluate(with_int8_adds(naive), test_k) for naive in (True, False)
)
print(
    f"float model with int8 additions: naive {add_naive_acc_k:.2%}, requantised"
    f" {add_correct_acc_k:.2%}"
)

# %% tags=["remove-cell"]
nb.glue("add_naive_acc_k", add_naive_acc_k)
nb.glue("add_correct_acc_k", add_correct_acc_k)

# %%
speed_k = interleaved(
    {
        "fp32": resnet_k,
        "fold": folded_k,
        "pruned 0.5 + ft + fold": cl.fold_batchnorm(pruned_ft_k),
    },
    test_k[0][:32],
)
for k, v in speed_k.items():
    print(f"{k:24s} {v:6.2f} ms  {speed_k['fp32'] / v:4.2f}x")
print(
    f"load average: {os.getloadavg()[0]:.1f}  (LiteRT int8 runs in another runtime:"
    " chapter 2 times it against LiteRT fp32)"
)

# %% [markdown]
# ## Compression by architecture on Fashion-MNIST
#
# On 2,000 MNIST digits most differences between the small members above, and between a member
# alone and distilled, are inside the noise of a single accuracy. Fashion-MNIST (10,000 test images of clothing, shipped with compresslib) leaves room to
# lose, and with every image's verdict for two models a paired test (McNemar's) sees differences of
# a few tenths of a point. This section is the chapter's main result on compression by architecture.
#
# The teacher is the zoo's `fashion_resnet20` (`cl.zoo.pretrained("fashion_resnet20",
# framework=...)`: ResNet-20 of width 16, trained by `scripts/train_fashion_zoo.py` on all 60,000
# training images for {glue:text}`f_teacher_epochs` epochs with shifts and flips, the same weights
# in both frameworks); it scores
# {glue:text}`f_teacher_torch` (95 % interval). Three students span {glue:text}`f_macs_range`
# fewer MACs: ResNet-8 at widths 16 and 8, and the inverted-residual member at width 0.5.
# `scripts/residual_fashion.py` trained each twice in PyTorch, alone and distilled from the teacher
# (`fit(student, data, teacher=logits)`, the teacher's logits computed once; loss
# (1 − α) · cross-entropy + α · T²·KL with α = {glue:text}`f_alpha` and T = {glue:text}`f_temp`), with the family recipe above (Adam, step schedule,
# batch 128, one thread) on {glue:text}`f_train_images` training images for
# {glue:text}`f_epochs` epochs, no augmentation: the budget that fitted in under an hour on two CPU
# cores shared with other jobs. It then moved every trained student to Keras with `cl.transfer` and
# evaluated it there: the Keras rows are the same networks run by Keras, not a second training
# (training in Keras as well did not fit the budget). The script kept every run's accuracy on all
# 10,000 test images and its per-image verdicts in
# `compresslib/data/results/05_residual_fashion.json`, which this section reads;
# `tests/test_residual_fashion.py` re-derives every accuracy and paired test from those verdicts
# and re-runs the teacher to check its cached verdicts.
#
# In the tables each accuracy carries its 95 % (Wilson) interval; "distilled − alone" is the paired
# difference on the same images with its 95 % interval and McNemar's p; the verdict is McNemar's
# at the 5 % level.

# %%
from compresslib.core import stats

FASH = json.loads(
    resources.files("compresslib.data")
    .joinpath("results/05_residual_fashion.json")
    .read_text()
)
F_RUNS, F_N, F_TEACHER = FASH["runs"], FASH["test_images"], FASH["teacher"]


def f_bits(fw, name, mode):
    """A cached run's per-image correctness on the Fashion-MNIST test set."""
    run = F_RUNS[f"{fw}/{name}/{mode}"]
    return stats.unpack_correctness(run["correct"], F_N)


def f_rows(fw):
    """Per student: sizes and three paired tests (b against a, on the same
    10,000 images): alone vs teacher, distilled vs teacher, distilled vs
    alone."""
    t_ok = f_bits(fw, F_TEACHER, "teacher")
    t_macs = F_RUNS[f"{fw}/{F_TEACHER}/teacher"]["macs"]
    rows = []
    by_macs = sorted(FASH["students"],
                     key=lambda n: -F_RUNS[f"{fw}/{n}/alone"]["macs"])
    for n in by_macs:
        alone, dist = f_bits(fw, n, "alone"), f_bits(fw, n, "distilled")
        run = F_RUNS[f"{fw}/{n}/alone"]
        rows.append({
            "member": n, "params": run["params"], "macs": run["macs"],
            "macs_ratio": t_macs / run["macs"],
            "alone": stats.paired(None, t_ok, alone),
            "distilled": stats.paired(None, t_ok, dist),
            "gain": stats.paired(None, alone, dist),
        })
    return t_ok, rows


def acc_cell(ok):
    """Accuracy with its 95 % interval on two lines (narrow columns)."""
    lo, hi = stats.wilson_interval(int(ok), F_N)
    return f"{100 * ok / F_N:.2f}<br>({100 * lo:.2f}–{100 * hi:.2f})"


def f_table(fw, t_ok, rows):
    """The chapter's main table, one framework."""
    t = F_RUNS[f"{fw}/{F_TEACHER}/teacher"]
    head = (
        f"| {nb.FRAMEWORK_LABELS[fw]} | params | × fewer MACs | alone %"
        " | distilled % | distilled − alone, pt | verdict |\n"
        "|---|--:|--:|--:|--:|--:|---|\n"
    )
    body = [
        f"| `{F_TEACHER}` (teacher) | {t['params'] / 1e3:.0f} k | 1 |"
        f" {acc_cell(t_ok.sum())} | | | |"
    ]
    for r in rows:
        g = r["gain"]
        lo, hi = g.difference_interval_pt
        body.append(
            f"| `{r['member']}` | {r['params'] / 1e3:.1f} k |"
            f" {r['macs_ratio']:.1f} | {acc_cell(g.correct_a)} |"
            f" {acc_cell(g.correct_b)} | {g.difference_pt:+.2f}<br>"
            f"({lo:+.2f} to {hi:+.2f})<br>p = {g.p_value:.2g} |"
            f" {g.verdict} |"
        )
    return Markdown(head + "\n".join(body).replace("-", "−"))


f_ok, f_tab = {}, {}
for fw in ("torch", "keras"):
    f_ok[fw], f_tab[fw] = f_rows(fw)
    display(f_table(fw, f_ok[fw], f_tab[fw]))

# %% tags=["remove-cell"]
def gain_sentence(fw):
    """What the paired tests say about distillation in one framework."""
    rows = f_tab[fw]
    parts = [f"`{r['member']}` {r['gain'].describe()}" for r in rows]
    count = {v: sum(r["gain"].verdict == v for r in rows)
             for v in ("higher", "lower", "within noise")}
    return (
        f"In {nb.FRAMEWORK_LABELS[fw]}, distilled against alone: "
        + "; ".join(parts)
        + f". Distillation raised {count['higher']} of the {len(rows)}"
        f" students beyond noise, lowered {count['lower']}, and left"
        f" {count['within noise']} within noise."
    )


def teacher_sentence(fw):
    """The distilled student closest to the teacher, against the teacher."""
    best = max(f_tab[fw], key=lambda r: r["distilled"].correct_b)
    return (
        f"In {nb.FRAMEWORK_LABELS[fw]} the closest distilled student,"
        f" `{best['member']}` ({best['macs_ratio']:.1f}× fewer MACs), against"
        f" the teacher: {best['distilled'].describe()}."
    )


def f_summary():
    """The summary's sentence on distillation, from the paired tests."""
    parts = []
    for fw in ("torch", "keras"):
        v = [r["gain"].verdict for r in f_tab[fw]]
        parts.append(
            f"{v.count('higher')} of {len(v)} students higher,"
            f" {v.count('lower')} lower and {v.count('within noise')} within"
            f" noise in {nb.FRAMEWORK_LABELS[fw]}"
        )
    below = sum(r["distilled"].verdict == "lower"
                for fw in ("torch", "keras") for r in f_tab[fw])
    return (
        "distilled against alone, " + "; ".join(parts) + f"; {below} of"
        f" {2 * len(f_tab['torch'])} distilled students below the teacher"
        " beyond noise"
    )


nb.glue("f_summary", f_summary())
nb.glue("f_kt_diff", sum(
    int((f_bits("torch", n, m) != f_bits("keras", n, m)).sum())
    for n in FASH["students"] for m in ("alone", "distilled")))


for fw in ("torch", "keras"):
    nb.glue(f"f_gain_{fw}", gain_sentence(fw))
    nb.glue(f"f_vs_teacher_{fw}", teacher_sentence(fw))
    nb.glue(f"f_teacher_{fw}", stats.format_accuracy(int(f_ok[fw].sum()), F_N))
nb.glue("f_train_images", f"{FASH['train_images']:,}")
nb.glue("f_epochs", FASH["recipe"]["epochs"])
nb.glue("f_teacher_epochs", cl.zoo.RECIPES[F_TEACHER].epochs)
nb.glue("f_alpha", FASH["distill"]["distill_alpha"])
nb.glue("f_temp", FASH["distill"]["temperature"])
nb.glue("f_macs_range", "{:.1f}× to {:.1f}×".format(
    min(r["macs_ratio"] for r in f_tab["torch"]),
    max(r["macs_ratio"] for r in f_tab["torch"])))


# %% tags=["hide-input"]
def f_figure():
    """Accuracy against MACs with 95 % intervals, one panel per framework."""
    fig, axes = plt.subplots(1, 2, figsize=nb.figsize(height=3.4),
                             sharey=True)
    for ax, fw in zip(axes, ("torch", "keras")):
        t = F_RUNS[f"{fw}/{F_TEACHER}/teacher"]
        ok = int(f_ok[fw].sum())
        lo, hi = stats.wilson_interval(ok, F_N)
        acc = 100 * ok / F_N
        ax.errorbar([t["macs"]], [acc],
                    yerr=[[acc - 100 * lo], [100 * hi - acc]],
                    fmt="*", ms=11, color="k", capsize=3, label="teacher")
        for mode, shift, face in (("alone", 0.93, "white"),
                                  ("distilled", 1.07, COLORS[fw])):
            x = [r["macs"] * shift for r in f_tab[fw]]
            res = [r[mode] for r in f_tab[fw]]
            y = [100 * p.accuracy_b for p in res]
            err = [[100 * (p.accuracy_b - p.interval_b[0]) for p in res],
                   [100 * (p.interval_b[1] - p.accuracy_b) for p in res]]
            ax.errorbar(x, y, yerr=err, fmt="o", mfc=face, color=COLORS[fw],
                        capsize=3, label=mode)
        biggest = max(f_tab[fw], key=lambda r: r["macs"])
        for r in f_tab[fw]:  # names under the bars; the biggest's to the right
            low = min(r[m].interval_b[0] for m in ("alone", "distilled"))
            mid = (r["alone"].accuracy_b + r["distilled"].accuracy_b) / 2
            right = r is biggest
            at = (r["macs"] * 1.15, 100 * mid) if right else (r["macs"], 100 * low)
            ax.annotate(r["member"], at,
                        xytext=(4, 0) if right else (0, -4),
                        textcoords="offset points", fontsize=9,
                        ha="left" if right else "center",
                        va="center" if right else "top")
        ax.margins(y=0.12)
        ax.set(xscale="log", xlabel="MACs per image",
               title=nb.FRAMEWORK_LABELS[fw], xlim=(1.2e6, 6e7))
        ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(mticker.EngFormatter(sep=""))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    plt.tight_layout(rect=(0, 0.08, 1, 1))
    plt.show()


# %% mystnb={"figure": {"caption": "Fashion-MNIST, all 10,000 test images: accuracy against MACs per image of three small residual students trained alone (open) and distilled from the teacher (filled), and of the teacher (star); bars are 95 % intervals. Cached by scripts/residual_fashion.py; the Keras panel runs the PyTorch-trained networks moved with cl.transfer."}, "image": {"alt": "Two panels, PyTorch and Keras, test accuracy against MACs per image on a log axis. The teacher's star sits top right; each student has an open and a filled marker with interval bars side by side at its MAC count, below the teacher."}}
f_figure()

# %% [markdown]
# {glue:md}`f_gain_torch`
#
# {glue:md}`f_gain_keras` The Keras rows run the PyTorch networks: over every trained student and
# all 10,000 images, their per-image verdicts differ from PyTorch's {glue:text}`f_kt_diff` times,
# so the Keras tests repeat the PyTorch ones and show that the moved networks keep their accuracy.
#
# {glue:md}`f_vs_teacher_torch` {glue:md}`f_vs_teacher_keras` The gap to the teacher mixes
# capacity and budget: the students saw {glue:text}`f_train_images` images for
# {glue:text}`f_epochs` epochs without augmentation, the teacher all 60,000 for
# {glue:text}`f_teacher_epochs` epochs with augmentation. What the table does settle is the trade a reader makes: how many points each step
# down in MACs costs on this data, measured on 10,000 images, and whether distillation on the same
# budget moves that cost beyond noise.

# %% [markdown]
# ## Side by side
#
# Every figure below was computed in this notebook (the architecture rows from the cached training runs,
# with latency measured here).


# %%
def best_student(rows):
    """The distilled member with the most parameters saved among those at least 2x
    faster than the teacher."""
    fast = [r for r in rows if r["speedup"] >= 2] or rows
    return max(fast, key=lambda r: (r["distilled"], r["params_ratio"]))


side = {}
for fw, teacher, rows, lat, speed in (
    ("torch", teacher_t, arch_t, lat_t, speed_t),
    ("keras", teacher_k, arch_k, lat_k, speed_k),
):
    s = best_student(rows)
    side[fw] = {
        "degradation": (
            runs[f"{fw}/resnet32_w16/alone"]["accuracy"],
            runs[f"{fw}/resnet32_w16_plain/alone"]["accuracy"],
        ),
        "student": s,
        "teacher_acc": teacher["accuracy"],
        "fold": (
            (fold_rel_t, fold_same_t, speed["fp32"] / speed["fold"])
            if fw == "torch"
            else (fold_rel_k, fold_same_k, speed["fp32"] / speed["fold"])
        ),
        "pruned": (
            pruned_acc_t if fw == "torch" else pruned_acc_k,
            speed["fp32"] / speed["pruned 0.5 + ft + fold"],
        ),
        "int8": int8_acc_t if fw == "torch" else int8_acc_k,
    }
t, k = side["torch"], side["keras"]
rows_md = [
    (
        "depth 32: residual / plain test accuracy (same budget)",
        *(f"{v['degradation'][0]:.2%} / {v['degradation'][1]:.2%}" for v in (t, k)),
    ),
    (
        "MNIST: distilled student (≥ 2× faster): member",
        *(f"`{v['student']['member']}`" for v in (t, k)),
    ),
    (
        "… teacher ÷ student parameters, speedup",
        *(
            f"{v['student']['params_ratio']:.1f}, {v['student']['speedup']:.2f}×"
            for v in (t, k)
        ),
    ),
    (
        "… accuracy: teacher / distilled / alone",
        *(
            f"{v['teacher_acc']:.2%} / {v['student']['distilled']:.2%} /"
            f" {v['student']['alone']:.2%}"
            for v in (t, k)
        ),
    ),
    (
        "BN folding: max logit change, same predictions, speedup",
        *(f"{v['fold'][0]:.1e}, {v['fold'][1]}, {v['fold'][2]:.2f}×" for v in (t, k)),
    ),
    (
        "naive folding (layer-list order)",
        f"{acc_t:.2%} → {naive_fold_acc_t:.2%} (convolutions defined first)",
        f"{acc_k:.2%} → {naive_fold_acc_k:.2%}",
    ),
    (
        "structured 0.5 + 1 distilled epoch: accuracy, speedup",
        *(f"{v['pruned'][0]:.2%}, {v['pruned'][1]:.2f}×" for v in (t, k)),
    ),
    (
        "naive channel removal",
        f"`RuntimeError`: {prune_error_t[:60]}…",
        f"`ValueError`: {prune_error_k[:60]}…",
    ),
    (
        "int8 with residual adds: accuracy",
        f"{t['int8']:.2%} (FX)",
        f"{k['int8']:.2%} (LiteRT)",
    ),
    (
        "naive int8 additions",
        f"`NotImplementedError` (eager mode)",
        f"{add_naive_acc_k:.2%} (requantised: {add_correct_acc_k:.2%})",
    ),
]
display(
    Markdown(
        "| | PyTorch | Keras |\n|---|---|---|\n"
        + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows_md)
    )
)


def distill_sentence(fw, rows, n_test):
    """How many small members distillation raised or lowered, and how many of those
    changes exceed two standard errors of the difference of two accuracies on
    ``n_test`` digits (unpaired: generous)."""

    def beyond(r):
        a, d = r["alone"], r["distilled"]
        return abs(d - a) > 2 * ((a * (1 - a) + d * (1 - d)) / n_test) ** 0.5

    up = [r for r in rows if r["distilled"] > r["alone"]]
    down = [r for r in rows if r["distilled"] < r["alone"]]
    text = (
        f"in {fw} it raised the accuracy of {len(up)} of the {len(rows)} small members"
        f" and lowered {len(down)}"
    )
    real_up, real_down = sum(map(beyond, up)), sum(map(beyond, down))
    if real_up + real_down == 0:
        return text + ", every change within noise (two standard errors)"
    return (
        text
        + f"; {real_up} rise(s) and {real_down} fall(s) exceed two standard errors, the"
        " rest are noise"
    )


distill_summary = "; ".join(
    distill_sentence(nb.FRAMEWORK_LABELS[fw], rows, len(test_t[1]))
    for fw, rows in (("torch", arch_t), ("keras", arch_k))
)
for fw, v in side.items():
    nb.glue(f"student_{fw}", f"`{v['student']['member']}`")
    nb.glue(f"student_{fw}_ratio", v["student"]["params_ratio"])
    nb.glue(f"student_{fw}_speedup", v["student"]["speedup"])
    nb.glue(f"student_{fw}_dist", v["student"]["distilled"])
    nb.glue(f"student_{fw}_alone", v["student"]["alone"])
    nb.glue(f"teacher_{fw}_acc", v["teacher_acc"])

# %% tags=["remove-cell"]
nb.glue("distill_summary", distill_summary)

# %% mystnb={"figure": {"caption": "Measured speedup over the float ResNet8 (batch 32, all cores, interleaved rounds) of BatchNorm folding and of structured pruning (50 %, fine-tuned, folded), and of the distilled student over the teacher, per framework."}, "image": {"alt": "Grouped bars, PyTorch and Keras side by side for three methods (BN folding, structured pruning, the distilled student), with a reference line at 1x (no speedup)."}}
labels = ["BN folding", "structured 0.5", "distilled student\nvs teacher"]
fig, ax = plt.subplots(figsize=(6.8, 2.6))
for i, fw in enumerate(("torch", "keras")):
    v = side[fw]
    vals = [v["fold"][2], v["pruned"][1], v["student"]["speedup"]]
    ax.bar(
        np.arange(3) + (i - 0.5) * 0.38, vals, width=0.38, color=COLORS[fw], label=fw
    )
ax.axhline(1, color="k", lw=0.8)
ax.set_xticks(range(3), labels)
ax.set_ylabel("speedup (×)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The distilled student in PyTorch is {glue:md}`student_torch`, with {glue:text}`student_torch_ratio:.1f`× fewer
# parameters than the teacher and {glue:text}`student_torch_speedup:.1f`× its speed; distilled it reaches
# {glue:text}`student_torch_dist:.2%` against {glue:text}`student_torch_alone:.2%` trained alone (teacher
# {glue:text}`teacher_torch_acc:.2%`). In Keras the pick is {glue:md}`student_keras`:
# {glue:text}`student_keras_dist:.2%` distilled, {glue:text}`student_keras_alone:.2%` alone (teacher
# {glue:text}`teacher_keras_acc:.2%`).
#
# ## Where convolutions dominate
#
# Tucker-2 (chapter 4) and structured pruning shrink the 3×3 convolutions. In the 16-channel ResNet8 those
# take only part of the time; the stem, the shortcuts, ReLUs, additions and a fixed cost per layer take the
# rest, and no amount of shrinking the convolutions removes it. The widest member, `resnet8_w64` (64, 128 and 256
# channels), is dominated by them. Time per layer kind, with forward hooks (PyTorch, batch 32, all cores):


# %%
def conv_share(model, x, runs=5):
    spent, hooks = {"3×3": 0.0, "1×1": 0.0}, []

    def pre(m, _):
        m._t0 = time.perf_counter()

    def post(m, _i, _o):
        spent["3×3" if m.kernel_size == (3, 3) and m.in_channels > 1 else "1×1"] += (
            time.perf_counter() - m._t0
        )

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    with torch.no_grad():
        model(x)
        spent.update({k: 0.0 for k in spent})
        t0 = time.perf_counter()
        for _ in range(runs):
            model(x)
        total = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    return spent["3×3"] / total


x32 = torch.as_tensor(test_t[0][:32])
shares = {
    n: conv_share(tm.build(n).eval(), x32) for n in ("resnet8_w16", "resnet8_w64")
}
for n, s in shares.items():
    print(
        f"{n}: {s:.0%} of the time in 3×3 convolutions with more than one input channel"
    )

# %% tags=["remove-cell"]
nb.glue("share_w16", shares["resnet8_w16"])
nb.glue("share_w64", shares["resnet8_w64"])

# %% [markdown]
# With {glue:text}`share_w64:.0%` of the time in the layers Tucker-2 shrinks (against {glue:text}`share_w16:.0%`),
# Amdahl's law leaves room for a real speedup. Tucker-2 of every 3×3 convolution but the stem at ranks
# (16, 16), folded, timed against the original in both frameworks (the speed does not depend on the
# values of the weights, so fresh models are timed here):


# %%
def is_3x3(fw):
    if fw == "torch":
        return (
            lambda name, m: m.kernel_size == (3, 3)
            and m.in_channels > 1
            and m.groups == 1
        )
    return (
        lambda name, l: type(l).__name__ == "Conv2D"
        and tuple(l.kernel_size) == (3, 3)
        and l.kernel.shape[2] > 1
    )


tucker_speed = {}
WIDE = "resnet8_w64"
for fw, build, example in (
    ("torch", lambda: tm.build(WIDE).eval(), x32),
    ("keras", lambda: km.build(WIDE), test_k[0][:32]),
):
    wide = build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "fp32": wide,
            "tucker (16, 16)": cl.fold_batchnorm(
                cl.decompose(wide, cl.Tucker(ranks=(16, 16)), layers=is_3x3(fw))
            ),
        }
    med = interleaved(models, example)
    tucker_speed[fw] = {k: med["fp32"] / v for k, v in med.items()}
    print(
        fw,
        "  ".join(f"{k}: {v:.2f}x" for k, v in tucker_speed[fw].items()),
        f"(load average {os.getloadavg()[0]:.1f})",
    )

# %% tags=["remove-cell"]
nb.glue("tucker_torch", tucker_speed["torch"]["tucker (16, 16)"])
nb.glue("tucker_keras", tucker_speed["keras"]["tucker (16, 16)"])

# %% [markdown]
# Tucker-2 at ranks (16, 16) makes the wide member {glue:text}`tucker_torch:.1f`× faster in PyTorch and
# {glue:text}`tucker_keras:.1f`× in Keras. Whether the accuracy survives is the other half: `bench/residual.py`
# trains `resnet8_w64` (zoo), fine-tunes its Tucker-2 and `Structured(0.5)` versions for three epochs, distilling
# from the original, and reports accuracy and speed in one run (`python bench/residual.py --sections convdom`).
#
# ## Summary
#
# * Shortcuts give every layer an identity path for the gradient. Without them, deeper plain networks train more
#   slowly on the same budget: the degradation problem, visible here at depth 20 and 32.
# * Residual networks do not compress anything by themselves; compact residual *architectures* do, at a
#   cost in accuracy that the Fashion-MNIST table measures on 10,000 images. Distillation from a larger
#   teacher is no sure gain: there, by McNemar's test at the 5 % level, {glue:text}`f_summary`.
# * `cl.transfer` moves a trained network between PyTorch and Keras with the same weights and BatchNorm
#   statistics, so the two frameworks compress the same model.
# * Every layer edit must follow the graph, not the list of layers: fold a BN into the layer that *feeds* it,
#   remove channels from every layer added to the same shortcut, and requantise at every addition.
#
# ## Exercises
#
# 1. Train `resnet56_w16` and `resnet56_w16_plain` with `scripts/residual_experiments.py`'s recipe (add
#    them to `DEGRADATION`). Does the gap grow with depth?
#
#    <details><summary>Hint</summary>
#
#    The script skips every run already in its output file, so write to a new one:
#    `python scripts/residual_experiments.py --groups degradation --frameworks torch --out deg56.json`
#    (mind how it slices `DEGRADATION`: the first four members run first). Compare the final training loss
#    (`runs[...]["loss"][-1]`), not only the test accuracy: the budget measures how fast each network
#    learns. The hidden cell below prints the cached gaps at depths 8, 20 and 32 to extend.
#
#    </details>
#
# 2. Distil `invres_x0.5` from `resnet20_w16` with `temperature=2` and `temperature=8`. Which is closer
#    to the teacher?
#
#    <details><summary>Hint</summary>
#
#    `ttrain.fit(student, train_t, teacher=teacher, temperature=T, distill_alpha=0.7, ...)` with
#    `teacher = cl.zoo.pretrained("resnet20_w16", "torch")` and a fresh `tm.build("invres_x0.5")` per run,
#    the family recipe of `CACHE["recipes"]`; the cache holds the result at `CACHE["distill"]`'s temperature
#    4. "Closer" can mean accuracy, or agreement: the share of test digits where student and teacher
#    predict the same class.
#
#    </details>
#
# 3. Put the eager-mode model of the int8 section right: replace the `+` of `BasicBlock.forward` by a
#    `torch.ao.nn.quantized.FloatFunctional` and quantise again. Compare its accuracy and speed with FX mode.
#
#    <details><summary>Hint</summary>
#
#    Give each `BasicBlock` of a copy of `resnet_t` a `FloatFunctional` (e.g. `block.skip_add`) and a
#    `forward` that ends in `block.relu2(block.skip_add.add(out, block.shortcut(x)))` (or `add_relu`), then
#    repeat the `Stubbed` / `prepare` / calibrate / `convert` steps. Time it against `int8_t` with
#    `interleaved(...)`, and evaluate both with `ttrain.evaluate`. Which fusions (Conv-BN-ReLU) did FX do
#    that eager mode needs `tq.fuse_modules` for?
#
#    </details>
#
# 4. Apply `cl.prune(..., cl.Structured(0.5))` to `invres_x1.0` in both frameworks. Which layers does each
#    framework leave whole, and why? (Hint: the depthwise convolution ties its input channels to its output
#    channels.)
#
#    <details><summary>Hint</summary>
#
#    Build `tm.build("invres_x1.0")` and its twin `cl.transfer(model, framework="keras")`, prune with
#    `example_input=torch.zeros(1, 1, 28, 28)` in PyTorch, and compare each convolution's
#    `out_channels` (PyTorch) or kernel shape (Keras) before and after. In Keras,
#    `kgraph.analyse(model)` (from `compresslib.keras import graph as kgraph`) shows the groups,
#    `is_frozen` and `skipped`: which group reaches the model output?
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 1: the cached degradation runs (final training loss,
# plain minus residual, per depth) and the two depth-56 members the exercise adds.
import json
from importlib import resources

import torch
import compresslib as cl
from compresslib.torch import models as tm

deg = json.loads(
    resources.files("compresslib.data")
    .joinpath("results/05_residual.json")
    .read_text()
)["runs"]
print("Exercise 1: final training loss, plain minus residual (3 epochs):")
for fw in ("torch", "keras"):
    gap = {
        d: deg[f"{fw}/resnet{d}_w16_plain/alone"]["loss"][-1]
        - deg[f"{fw}/resnet{d}_w16/alone"]["loss"][-1]
        for d in (8, 20, 32)
    }
    print(f"  {fw}:", ", ".join(f"depth {d} {v:+.3f}" for d, v in gap.items()))
    assert 0 < gap[20] < gap[32]  # plain falls behind, more with depth
x0 = torch.zeros(1, 1, 28, 28)
p56 = {
    n: cl.measure(tm.build(n), example_input=x0, latency=False)
    for n in ("resnet56_w16", "resnet56_w16_plain")
}
res56, plain56 = p56.values()
print(
    f"  depth 56: {res56.params:,} parameters with shortcuts,"
    f" {plain56.params:,} without; {res56.macs / 1e6:.1f} M MACs"
)
# only the two 1x1 projection shortcuts (+ their BN) differ: 16->32, 32->64
assert res56.params - plain56.params == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64

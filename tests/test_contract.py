"""The backend contract: both frameworks offer the same public functions, with the same arguments, in
modules of the same names; and every technique is a config with one registered handler per framework.

A name or argument one framework has and the other has not is listed below with the reason; anything
else that drifts fails here.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch  # noqa: F401  (torch before tensorflow)

import compresslib.keras as K
import compresslib.torch as T
from compresslib import registry
from compresslib.configs import CONFIG_CLASSES

# module -> {name: why only one framework has it}
FRAMEWORK_ONLY = {
    "calibrated": {
        "is_conv1d": "Hugging Face's Conv1D (GPT-2's projections) is a torch module",
        "KeepZeros": "Keras fine-tuning hooks are callbacks (torch's are functions of (model, step))",
        "summed_axes": "EinsumDense's contracted axes: a Keras layer (torch's Linear always sums its last axis)",
    },
    "gpt": {
        "GPT": "the torch model is an nn.Module class",
        "Block": "the torch model's transformer block, an nn.Module",
        "gpt": "the Keras model is built as a functional graph by a function",
        "CausalAttention": "a weightless Keras layer for the functional graph (torch calls sdpa in forward)",
        "PositionEmbedding": "a Keras layer for learned positions (torch uses an nn.Embedding in forward)",
    },
    "smoothing": {
        "EXACT": "torch proves each smoothing pair on the forward with random scales",
        "find_pairs": "torch finds LayerNorm/Linear pairs from a hooked forward; Keras reads its functional graph",
    },
    "bias_correction": {
        "float_means_hooks": "torch corrects the int8 model after convert_fx, from float means recorded in calibration",
        "quantized_layer_targets": "the int8 layers of a converted torch FX graph",
        "correct": "torch's sequential empirical correction on the converted int8 model",
        "check_note": "torch int8 files carry the full-range corrections in their recipe",
        "corrected_copy": "Keras corrects a float copy before LiteRT's converter (which rounds inside the flatbuffer)",
        "int8_kernel": "LiteRT's weight rounding, reproduced for the Keras correction",
    },
    "io": {
        "from_plain_spec": "Keras rebuilds a model from its stored config; torch replays onto the class or instance",
        "build": "torch rebuilds module trees node by node (Keras builds from its JSON config)",
        "check_spec": "the torch module tree is checked node by node before anything is built",
        "check_skeleton": "int8 torch models replay a recipe on a float skeleton",
        "check_state": "int8 torch models store torch.ao's quantized state",
        "class_path": "torch classes are saved by module path",
        "lookup_class": "torch classes are looked up by exact module path",
        "registered_classes": "the torch class registry",
        "builtin_objects": "Keras objects allowed by their registered Keras names",
        "check_config": "the Keras JSON config is walked before Keras sees it",
        "is_registrable": "Keras objects register under Keras names",
        "registered_objects": "the Keras object registry",
    },
    "measure": {
        "layer_stats": "Keras reads per-layer shapes from the symbolic graph",
        "is_parameter": "Keras keeps BatchNorm statistics among its weights",
    },
    "models": {
        "BasicBlock": "an nn.Module class; Keras builds blocks with functions",
        "ResNet8": "an nn.Module class; Keras builds the model with a function",
        "basic_block": "the Keras functional block",
        "Bottleneck": "an nn.Module class; Keras builds blocks with functions (residual_block)",
        "ResNet": "an nn.Module class; Keras builds the family with a function",
        "InvertedResidual": "an nn.Module class; Keras builds blocks with functions",
        "InvertedResidualNet": "an nn.Module class; Keras builds the family with a function",
        "residual_block": "the Keras functional block on a tensor (torch's blocks are the module classes)",
    },
    "transfer": {
        "check_batch": "the Keras side makes the probe batch the twin check feeds both models",
        "input_shape": "a Keras model fixes its input shape; torch family models take any size",
    },
    "pruning": {
        "to_output_major": "Keras kernels are (…, in, out); masks are computed output-major",
        "from_output_major": "inverse of to_output_major",
        "structured_plan": "Keras structured pruning walks its own graph (torch uses Torch-Pruning)",
    },
    "quantization": {
        "LiteRTModel": "Keras int8 runs in LiteRT; torch int8 stays an nn.Module",
        "FakeQuantDense": "Keras 3 has no QAT: compresslib's fake-quant layers",
        "FakeQuantConv2D": "Keras 3 has no QAT: compresslib's fake-quant layers",
    },
    "export": {
        "export_torch": "torch.export (.pt2) is a PyTorch runtime",
        "export_litert": "Keras's own runtime is LiteRT",
        "litert_flatbuffer": "Keras's own runtime is LiteRT",
        "load_litert": "Keras's own runtime is LiteRT",
    },
    "sharing": {
        "CentroidLayer": "Keras has no per-variable gradient hook: a layer whose kernel gathers from a codebook",
    },
    "distributed": {
        "sync_observers": "torch.ao observers keep min/max across steps (Keras QAT ranges are per batch)",
        "broadcast": "torch ranks are processes that exchange masks (Keras replicas share mirrored variables)",
        "all_sum": "torch ranks are processes whose losses are summed (Keras replicas live in one process)",
        "barrier": "torch ranks are processes that wait for rank 0's file (one Keras process writes)",
        "unwrap": "the module inside torch's DistributedDataParallel wrapper",
        "wrap": "torch's DistributedDataParallel wrapper (Keras clones the model under the strategy's scope)",
        "placed": "Keras models whose variables were made under a tf.distribute strategy's scope",
        "sync_max": "the all-reduced batch range of Keras's fake-quantizer inside a replica",
    },
    "train": {
        "labelled_batches": "torch evaluates DataLoader-style iterables of (x, y) batches",
        "first_inputs": "torch evaluates DataLoader-style iterables of (x, y) batches",
    },
}
# config class -> why only torch models have a handler for it (Keras models get registry's TypeError naming
# what quantize supports for them)
TORCH_ONLY_CONFIGS = {
    "Float8Dynamic": "torchao's FP8 tensor subclass for torch Linear layers on CUDA; Keras on a GPU runs through "
                     "the torch backend, whose Keras layers are not nn.Linear",
    "Int8DynamicCUDA": "torchao's int8 tensor subclass (torch._int_mm) for torch Linear layers on CUDA",
    "Int4WeightOnlyCUDA": "torchao's int4 tinygemm tensor subclass for torch Linear layers on CUDA",
    "Sparse24": "torch.sparse.to_sparse_semi_structured for torch Linear weights on CUDA",
    "Auto": "times candidates with torch's CUDA-synchronised timer; the Keras candidates (LiteRT) run elsewhere",
}
# configs that need arguments to exist
EXAMPLE_ARGS = {"SVD": {"rank": 4}, "Tucker": {"ranks": (2, 2)}, "Auto": {"budget": 0.99}}  # Auto: candidates below
# (module, function) -> {argument: why only one framework takes it}
_TRACE = "torch traces the model with an input batch; a Keras model knows its input signature"
_RANGE = "torch's x86 int8 activations use 7 bits; full_range re-spreads the calibrated range over 8"
ARGUMENT_ONLY = {
    ("export", "export_onnx"): {"example_input": _TRACE, "full_range": _RANGE},
    ("export", "export_openvino"): {"example_input": _TRACE, "full_range": _RANGE},
    ("export", "metadata"): {"example": _TRACE},
    ("train", "fit"): {
        "weight_decay": "torch's Adam takes it per call; Keras models carry their optimizer settings",
        "on_step": "torch's training loop hook (Keras uses callbacks)",
        "callbacks": "Keras training callbacks (torch uses on_step)",
        "jit_compile": "XLA compilation of the Keras train step",
    },
    ("models", "resnet8"): {"widths": "Keras builds the layer widths into the functional graph"},
}


def _modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}


SHARED = sorted(_modules(T) & _modules(K))


def _public(module) -> dict:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, o in vars(module).items() if not n.startswith("_")
                 and getattr(o, "__module__", None) == module.__name__ and (inspect.isfunction(o) or inspect.isclass(o))]
    return {n: getattr(module, n) for n in names}


def test_both_backends_have_the_technique_modules():
    for name in ("quantization", "pruning", "lowrank", "fold", "measure", "train", "io", "models", "zoo_io"):
        assert name in SHARED, f"{name} missing in one backend"


@pytest.mark.parametrize("name", SHARED)
def test_same_public_names_and_arguments(name):
    t = _public(importlib.import_module(f"compresslib.torch.{name}"))
    k = _public(importlib.import_module(f"compresslib.keras.{name}"))
    allowed = FRAMEWORK_ONLY.get(name, {})
    assert set(t) - set(allowed) == set(k) - set(allowed), (
        f"compresslib.{{torch,keras}}.{name}: torch-only {sorted(set(t) - set(k) - set(allowed))}, "
        f"keras-only {sorted(set(k) - set(t) - set(allowed))}")
    for fn in sorted(set(t) & set(k)):
        if not (inspect.isfunction(t[fn]) and inspect.isfunction(k[fn])):
            continue
        extra = ARGUMENT_ONLY.get((name, fn), {})
        ta = [p for p in inspect.signature(t[fn]).parameters if p not in extra]
        ka = [p for p in inspect.signature(k[fn]).parameters if p not in extra]
        assert ta == ka, f"{name}.{fn}: torch takes {ta}, keras takes {ka}"


def test_framework_only_names_exist():
    """The exceptions above must not outlive the code they excuse."""
    for name, names in FRAMEWORK_ONLY.items():
        t = _public(importlib.import_module(f"compresslib.torch.{name}"))
        k = _public(importlib.import_module(f"compresslib.keras.{name}"))
        for n in names:
            assert (n in t) != (n in k), f"{name}.{n} is listed as framework-only but is in {'both' if n in t else 'neither'}"


def test_every_config_has_a_handler_in_both_frameworks():
    configs = [c for c in CONFIG_CLASSES.values() if hasattr(c, "__dataclass_fields__") and c.verb]
    assert len(configs) >= 12
    for cls in configs:
        kwargs = dict(EXAMPLE_ARGS.get(cls.__name__, {}))
        if cls.__name__ == "Auto":
            kwargs["candidates"] = [CONFIG_CLASSES["BFloat16"]()]
        config = cls(**kwargs)
        for framework in ("torch", "keras"):
            if framework == "keras" and cls.__name__ in TORCH_ONLY_CONFIGS:
                with pytest.raises(TypeError, match=f"config: {cls.__name__} has no {cls.verb} for keras models"):
                    registry.handler(cls.verb, framework, config)
                continue
            fn = registry.handler(cls.verb, framework, config)
            assert fn.__module__.startswith(f"compresslib.{framework}."), (cls.__name__, framework, fn.__module__)


def test_torch_only_configs_exist():
    """The exceptions above must not outlive the configs they excuse."""
    for name in TORCH_ONLY_CONFIGS:
        assert name in CONFIG_CLASSES, name


def test_unknown_config_is_refused_naming_what_is_supported():
    class Mystery(CONFIG_CLASSES["QuantConfig"]):
        pass

    with pytest.raises(TypeError, match="Mystery has no quantize for torch models; quantize supports .*Int8Static"):
        registry.handler("quantize", "torch", Mystery())
    del CONFIG_CLASSES["Mystery"]


def test_registering_twice_is_refused():
    from compresslib.configs import Int8Dynamic

    with pytest.raises(ValueError, match="already has a torch quantize handler"):
        registry.register("quantize", "torch", Int8Dynamic)(lambda model, config, **kw: model)

"""Half-precision copies of Keras 3 models (``Float16``, ``BFloat16``): every layer rebuilt with that dtype policy.

A layer whose ops have no kernel for the dtype on this backend stays float32 and is named in
one warning: on TensorFlow's CPU, recurrent layers in bfloat16 fail while building
(their ``Orthogonal`` initializer calls ``qr``, which has no bfloat16 kernel). Keras casts a
layer's floating inputs to its own compute dtype, so float32 and half layers mix. Nested
Sequential/functional models are converted layer by layer; a subclassed model is re-created
from its ``get_config`` with the policy as the global default (its sublayers are created in
its ``__init__``), and refused if it cannot run that way.

Example:
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> h = retyped(m, "float16", "Float16")
    >>> h.layers[-1].kernel.dtype, m.layers[-1].kernel.dtype
    ('float16', 'float32')
"""
from __future__ import annotations

import inspect
import re
import warnings
from typing import Any

import keras
import numpy as np

from compresslib.keras.checks import describe, input_specs, is_subclassed, probe_input, warn_unchanged
from compresslib.keras.rebuild import copy_layer, graph_layers, rebuild


def _reason(exc: BaseException) -> str:
    text = str(exc)
    node = re.search(r"\{\{node (\w+)\}\}", text) or re.search(r"\[Op:(\w+)\]", text)
    if node:
        return f"TensorFlow op {node.group(1)} has no kernel for this dtype"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first[:120]}"


def _probe(model: keras.Model, specs: list, verb: str, policy: str) -> None:
    """Run ``model`` once on zeros; ``ValueError`` naming the failure if it cannot run in ``policy``."""
    try:
        inputs = [probe_input(spec) for spec in specs]
        out = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
        keras.tree.map_structure(lambda t: keras.ops.convert_to_numpy(t), out)
    except Exception as exc:  # noqa: BLE001 - reported as a refusal naming what failed
        raise ValueError(f"model: {verb}: {model.name} does not run in {policy} on this backend "
                         f"({_reason(exc)})") from exc


def _retyped_graph(model: keras.Model, policy: str) -> tuple[keras.Model, dict[str, str]]:
    skipped: dict[str, str] = {}

    def factory(layer):
        made: dict[str, Any] = {}  # created on the first call, reused at the other places of a shared layer

        def apply(*args, **kwargs):
            if "fallback" in made:
                return made["fallback"](*args, **kwargs)
            try:
                if "new" not in made:
                    made["new"] = layer.__class__.from_config({**layer.get_config(), "dtype": policy})
                out = made["new"](*args, **kwargs)
                made["new"].set_weights([np.asarray(w) for w in layer.get_weights()])
                return out
            except Exception as exc:  # noqa: BLE001 - this layer cannot be built in the dtype: keep it float32
                skipped[layer.name] = f"{type(layer).__name__}: {_reason(exc)}"
                made["fallback"] = copy_layer(layer)
                return made["fallback"](*args, **kwargs)
        return apply

    layers = [l for l in graph_layers(model) if not isinstance(l, keras.layers.InputLayer)]
    return rebuild(model, {layer.name: factory for layer in layers}), skipped


def _retyped_subclassed(model: keras.Model, policy: str, verb: str) -> keras.Model:
    try:
        config = model.get_config()
    except NotImplementedError as exc:
        raise TypeError(f"model: {verb} re-creates the model in {policy}, but the subclassed "
                        f"{type(model).__name__} has no get_config() to re-create it from; give it "
                        f"get_config()/from_config()") from exc
    name = type(model).__name__
    missing = _missing_arguments(type(model), config)
    if missing:
        raise TypeError(f"model: {verb} re-creates the model in {policy} from its config, but the get_config() "
                        f"of the subclassed {name} does not return its constructor argument(s) "
                        f"{', '.join(missing)}; return them from get_config()")
    specs = input_specs(model)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        try:
            new = model.__class__.from_config({**config, "dtype": policy})
        except Exception as exc:  # noqa: BLE001 - a from_config that does not take its own get_config
            raise TypeError(f"model: {verb} re-creates the model in {policy} from its config, but the subclassed "
                            f"{name} cannot be re-created from its get_config() ({_reason(exc)}); make "
                            f"from_config(get_config()) work") from exc
        _probe(new, specs, verb, policy)  # builds it: subclassed models create their weights on the first call
    finally:
        keras.config.set_dtype_policy(previous)
    new.set_weights(model.get_weights())
    return new


def _missing_arguments(cls: type, config: dict) -> list[str]:
    """The required arguments of ``cls.__init__`` that ``config`` lacks (``from_config`` would raise), unless
    the class has its own ``from_config`` (which may supply them)."""
    if "from_config" in vars(cls):
        return []
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.name not in config
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def retyped(model: keras.Model, policy: str, verb: str) -> keras.Model:
    """A copy of ``model`` computing in ``policy`` (``"float16"`` or ``"bfloat16"``) where its layers can."""
    if is_subclassed(model):
        return _retyped_subclassed(model, policy, verb)
    new, skipped = _retyped_graph(model, policy)
    _probe(new, input_specs(model), verb, policy)
    weighted = [l for l in graph_layers(model) if l.weights]
    if weighted and all(l.name in skipped for l in weighted):
        warn_unchanged(verb, f"no layer with weights can run in {policy} here: "
                       + "; ".join(f"{n} ({why})" for n, why in skipped.items()))
    elif skipped:
        warnings.warn(f"{verb}: layer(s) kept in float32 because their ops lack {policy} here: "
                      + describe([f"{n} ({why})" for n, why in skipped.items()]), UserWarning, stacklevel=3)
    return new


__all__ = ["retyped"]

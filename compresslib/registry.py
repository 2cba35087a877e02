"""The handler registry: ``(verb, framework, config type) -> function``.

A technique is one config class (:mod:`compresslib.configs`) plus one handler per
framework, registered where it is defined::

    @register("quantize", "torch", Int8Dynamic)
    def quantize_dynamic(model, config, **kwargs): ...

The public verbs (:mod:`compresslib.api`) look the handler up here; nothing else
knows the list of techniques. A backend's modules are imported the first time a
model of that framework asks for a handler (every module of
``compresslib/<framework>/``, so a new module registers itself just by existing),
which keeps ``import compresslib`` free of torch and TensorFlow.

Fine-tuning after a step works the same way: :func:`register_tuner` maps
``(framework, config type)`` to a function ``tuner(model, config) -> Tuning`` that says
what to train, the per-step hooks that keep what the step made (masks, shared
centroids), and how to finish; :mod:`compresslib.pipeline` asks :func:`tuner` and
knows no technique by name. A config without a tuner is fine-tuned as a plain model,
except a quantized one (``verb == "quantize"``), which is not fine-tuned.

Kinds of saved model work the same way: :func:`register_kind` maps
``(framework, kind)`` to the pair of functions that describe a model as a ``.clz`` spec and build it back
that the generic ``.clz`` description cannot cover (e.g. a torch int8 model),
and a model carries its kind in ``model.compresslib_kind``.

Example:
    >>> from compresslib.configs import Magnitude
    >>> h = handler("prune", "torch", Magnitude(0.5))   # doctest: +SKIP
    >>> h.__module__                                      # doctest: +SKIP
    'compresslib.torch.pruning'
    >>> handler("prune", "cobol", Magnitude(0.5))
    Traceback (most recent call last):
    ...
    ValueError: framework must be one of ('torch', 'keras'), got 'cobol'
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, NamedTuple, Optional

from compresslib._dispatch import backend, check_framework, framework_of

VERBS = ("quantize", "prepare_qat", "prune", "decompose", "transform")

_HANDLERS: dict[tuple[str, str, type], Callable[..., Any]] = {}
_KINDS: dict[tuple[str, str], "Kind"] = {}
_TUNERS: dict[tuple[str, type], Callable[..., "Tuning"]] = {}
_LOADED: set[str] = set()


class Kind(NamedTuple):
    """How a model of one kind is described as a ``.clz`` spec (``to_spec``) and built back (``from_spec``)."""

    to_spec: Callable[[Any], tuple[dict, dict]]
    from_spec: Callable[[dict, dict], Any]


def register(verb: str, framework: str, *config_types: type) -> Callable:
    """Decorator: the function handles ``verb`` for ``framework`` models and these config types."""
    if verb not in VERBS:
        raise ValueError(f"verb must be one of {VERBS}, got {verb!r}")
    return _decorator(_HANDLERS, lambda cls: (verb, framework, cls), f"{framework} {verb} handler",
                      framework, config_types)


def _decorator(table: dict, key: Callable[[type], tuple], what: str, framework: str,
               config_types: tuple) -> Callable:
    """A decorator that enters the function in ``table`` under ``key(cls)`` for each config type, once."""
    check_framework(framework)
    if not config_types:
        raise ValueError(f"a {what.split()[-1]} needs at least one config type")

    def decorate(fn: Callable) -> Callable:
        for cls in config_types:
            k = key(cls)
            if k in table and table[k] is not fn:
                raise ValueError(f"{cls.__name__} already has a {what}: {table[k].__module__}.{table[k].__name__}")
            table[k] = fn
        return fn

    return decorate


class Tuning(NamedTuple):
    """What fine-tuning after a step trains and keeps.

    ``model``: the model to train in place (the step's model, or a trainable stand-in for it);
    ``hooks``: called during training (torch: ``hook(model, step)`` after each optimiser step;
    Keras: callbacks); ``finish(trained) -> model``: the fine-tuned model of the step's kind.
    """

    model: Any
    hooks: list
    finish: Callable[[Any], Any]


def register_tuner(framework: str, *config_types: type) -> Callable:
    """Decorator: ``fn(model, config) -> Tuning`` prepares fine-tuning of ``framework`` models after these configs.

    Example:
        >>> from compresslib.configs import Magnitude
        >>> tuner("torch", Magnitude(0.5)).__name__                       # doctest: +SKIP
        'keep_masks'
    """
    return _decorator(_TUNERS, lambda cls: (framework, cls), f"{framework} tuner", framework, config_types)


def tuner(framework: str, config: Any) -> Optional[Callable[..., Tuning]]:
    """The tuner registered for ``config``'s type (or a base type) on ``framework`` models, or None."""
    check_framework(framework)
    load_backend(framework)
    for cls in type(config).__mro__:
        fn = _TUNERS.get((framework, cls))
        if fn is not None:
            return fn
    return None


def register_kind(framework: str, kind: str, to_spec: Callable, from_spec: Callable) -> None:
    """Models with ``model.compresslib_kind == kind`` are described by ``to_spec`` and built back by ``from_spec``."""
    check_framework(framework)
    key = (framework, kind)
    if key in _KINDS and _KINDS[key] != (to_spec, from_spec):
        raise ValueError(f"{framework} model kind {kind!r} is already registered")
    _KINDS[key] = Kind(to_spec, from_spec)


def load_backend(framework: str) -> None:
    """Import every module of ``compresslib/<framework>/`` once, so that their registrations run."""
    check_framework(framework)
    if framework in _LOADED:
        return
    for info in pkgutil.iter_modules(importlib.import_module(f"compresslib.{framework}").__path__):
        if not info.name.startswith("_"):
            backend(framework, info.name)
    _LOADED.add(framework)


def handler(verb: str, framework: str, config: Any) -> Callable[..., Any]:
    """The function registered for ``verb`` on ``framework`` models and ``config``'s type (or a base type)."""
    check_framework(framework)
    load_backend(framework)
    for cls in type(config).__mro__:
        fn = _HANDLERS.get((verb, framework, cls))
        if fn is not None:
            return fn
    names = supported(verb, framework)
    raise TypeError(f"config: {type(config).__name__} has no {verb} for {framework} models; "
                    f"{verb} supports {', '.join(names) or 'nothing'} there")


def run(verb: str, model: Any, config: Any, **kwargs: Any) -> Any:
    """Apply ``config`` to ``model`` through the registered handler (the verbs call this)."""
    return handler(verb, framework_of(model), config)(model, config, **kwargs)


def kind(framework: str, name: str) -> Kind:
    """The to_spec/from_spec pair of a model kind; ``ValueError`` naming the known kinds otherwise."""
    load_backend(framework)
    try:
        return _KINDS[(framework, name)]
    except KeyError:
        known = sorted(k for f, k in _KINDS if f == framework)
        raise ValueError(f"unknown {framework} model kind {name!r}; known kinds: {known}") from None


def supported(verb: str, framework: str) -> list[str]:
    """Names of the config types with a ``verb`` handler for ``framework`` (imports that backend)."""
    load_backend(framework)
    return sorted({cls.__name__ for (v, f, cls) in _HANDLERS if v == verb and f == framework})


__all__ = ["VERBS", "Kind", "Tuning", "register", "register_kind", "register_tuner", "load_backend", "handler", "run",
           "kind", "supported", "tuner"]

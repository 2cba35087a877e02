"""The compression pipeline: a recipe of steps, fine-tuning between them, every stage measured.

``compress(model, recipe)`` applies the steps of a recipe in order to a copy of
``model`` (PyTorch or Keras), fine-tunes after each step when training data is
given, and measures every stage from the ``.clz`` file it writes and loads
back. A recipe is

* a list of configs (``[cl.Magnitude(0.9), cl.WeightSharing(5)]``) or of step dicts;
* a dict ``{"steps": [...], "finetune": {...}, "entropy_coding": true}``;
* the path of a YAML or JSON file holding such a dict (or list);
* a preset name: ``"deep_compression"`` (Han et al. 2016: prune, share, entropy-code).

A step dict names the config class and its fields, and may override fine-tuning::

    steps:
      - {type: Magnitude, sparsity: 0.95, scope: global, finetune: {epochs: 16, gradual: true}}
      - {type: WeightSharing, bits: 5, conv_bits: 8, finetune: {epochs: 4, lr: 0.0003}}
    finetune: {epochs: 2, lr: 0.001, batch_size: 64, lr_schedule: step, distill: true}
    entropy_coding: true

Fine-tuning settings: ``epochs``, ``lr``, ``batch_size``, ``seed``, ``lr_schedule``
("constant" or "step"), ``distill`` (the input model as teacher, Hinton et al.
2015) and ``gradual`` (a step with a ``sparsity`` and an empty ``schedule``, such as
``Magnitude``, prunes gradually over the first third of its fine-tuning, Zhu & Gupta
2017). Fine-tuning keeps what a step made through the tuner registered for its config
(``compresslib.registry.register_tuner``): after unstructured pruning the masks are
re-applied after every optimiser step (the backends' ``keep_masks``, which also follows
the schedule); after weight sharing only the centroids move (``keep_centroids``). The
pipeline knows no technique by name: a new config with a tuner is fine-tuned the same way.

The returned :class:`~compresslib.report.Comparison` has one row per stage.
With ``entropy_coding`` (the preset's default, and whenever a step's config asks for it,
``Config.entropy_coding``: ``WeightSharing``) the step rows report the ``.clz`` bytes *without* entropy
coding (codebooks with fixed-width indices, plain bitmasks) and a last row,
``+ entropy coding``, the file as :func:`compresslib.api.save` writes it; that
row's accuracy is that of the model read back from the file.

Example:
    >>> recipe = load_recipe("deep_compression")
    >>> [type(s.config).__name__ for s in recipe.steps], recipe.entropy_coding
    (['Magnitude', 'WeightSharing'], True)
    >>> load_recipe([{"type": "Magnitude", "sparsty": 0.9}])
    Traceback (most recent call last):
    ...
    ValueError: recipe steps[0] (Magnitude): unknown field 'sparsty'; fields are ['sparsity', 'scope', 'schedule']
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from compresslib import api, registry
from compresslib import configs as C
from compresslib._dispatch import backend, framework_of
from compresslib.core import packing, schedules
from compresslib.core.encodings import entropy
from compresslib.progress import progress
from compresslib.report import Comparison, Report, compare

CALIBRATED_VERBS = ("quantize", "transform")
FINETUNE_FIELDS = {"epochs": 0, "lr": 1e-3, "batch_size": 64, "distill": False, "seed": 0,
                   "lr_schedule": "constant", "gradual": False}

# Han et al. (2016) on LeNet: prune (global magnitude), share (5 bits fc, 8 bits conv), entropy-code.
PRESETS: dict[str, dict] = {
    "deep_compression": {
        "steps": [
            {"type": "Magnitude", "sparsity": 0.95, "scope": "global",
             "finetune": {"epochs": 16, "lr": 1e-3, "gradual": True}},
            {"type": "WeightSharing", "bits": 5, "conv_bits": 8, "finetune": {"epochs": 4, "lr": 3e-4}},
        ],
        "finetune": {"batch_size": 64, "distill": True, "lr_schedule": "step"},
        "entropy_coding": True,
    },
}


def step_types() -> dict[str, type]:
    """``{class name: config class}`` of every config a recipe step may name."""
    return {c.__name__: c for c in C.leaf_subclasses(C.Config)}


@dataclass
class Step:
    """One step: a config, and fine-tuning settings that override the recipe's."""

    config: C.Config
    finetune: dict = field(default_factory=dict)


@dataclass
class Recipe:
    """Steps in order, default fine-tuning settings, and whether the last stage is entropy coding."""

    steps: list[Step]
    finetune: dict = field(default_factory=dict)
    entropy_coding: bool = False

    def finetune_for(self, step: Step) -> dict:
        """The fine-tuning settings of ``step``: defaults, then the recipe's, then the step's."""
        return {**FINETUNE_FIELDS, **self.finetune, **step.finetune}


def _check_finetune(settings: Any, where: str) -> dict:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ValueError(f"{where}: finetune must be a dict with keys {sorted(FINETUNE_FIELDS)}, "
                         f"got {type(settings).__name__}")
    unknown = sorted(set(settings) - set(FINETUNE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown finetune field(s) {unknown}; fields are {sorted(FINETUNE_FIELDS)}")
    for key in ("epochs", "batch_size", "seed"):
        if key in settings:
            v, lo = settings[key], 1 if key == "batch_size" else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{where}: finetune.{key} must be an integer >= {lo}, got {v!r}")
    if "lr" in settings and (isinstance(settings["lr"], bool) or not isinstance(settings["lr"], (int, float))
                             or not settings["lr"] > 0):
        raise ValueError(f"{where}: finetune.lr must be a number > 0, got {settings['lr']!r}")
    for key in ("distill", "gradual"):
        if key in settings and not isinstance(settings[key], bool):
            raise ValueError(f"{where}: finetune.{key} must be true or false, got {settings[key]!r}")
    if "lr_schedule" in settings and settings["lr_schedule"] not in ("constant", "step"):
        raise ValueError(f"{where}: finetune.lr_schedule must be 'constant' or 'step', got {settings['lr_schedule']!r}")
    return dict(settings)


def _step(item: Any, i: int) -> Step:
    where = f"recipe steps[{i}]"
    if isinstance(item, C.Config):
        return Step(item)
    if isinstance(item, str):
        item = {"type": item}
    if not isinstance(item, dict):
        raise TypeError(f"{where} must be a compresslib config, a step name or a dict with a 'type', "
                        f"got {type(item).__name__}")
    types = step_types()
    kind = item.get("type")
    if kind not in types:
        raise ValueError(f"{where}: unknown step type {kind!r}; known: {sorted(types)}")
    cls = types[kind]
    where = f"{where} ({kind})"
    fields = {k: v for k, v in item.items() if k not in ("type", "finetune")}
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in fields if k not in names]
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; fields are {names}")
    schedule = fields.get("schedule")
    if not (schedule is None or isinstance(schedule, schedules.Schedule)
            or (isinstance(schedule, dict) and "type" in schedule)):
        raise ValueError(f"{where}: schedule must be null or a dict with a 'type' (PolynomialDecay, ConstantSparsity)")
    try:
        config = C.Config.from_dict({"type": kind, **fields})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    return Step(config, _check_finetune(item.get("finetune"), where))


def _read_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise ValueError(f"recipe: no preset or file named {path!r}; presets are {sorted(PRESETS)}, "
                         "files end in .yaml, .yml or .json")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe: {path} is not valid JSON: {exc}") from None
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML comes with the book extras
        raise ImportError("recipe: reading a YAML recipe needs PyYAML (pip install pyyaml), or use JSON") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe: {path} is not valid YAML: {exc}") from None


def load_recipe(recipe: Any) -> Recipe:
    """A :class:`Recipe` from a list, a dict, a preset name, or a YAML/JSON file (see the module docstring).

    Errors name the step and field: ``ValueError("recipe steps[1] (WeightSharing): ...")``.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, os.PathLike):
        recipe = os.fspath(recipe)
    if isinstance(recipe, str):
        recipe = copy.deepcopy(PRESETS[recipe]) if recipe in PRESETS else _read_file(recipe)
    if isinstance(recipe, (list, tuple)):
        recipe = {"steps": list(recipe)}
    if not isinstance(recipe, dict):
        raise TypeError(f"recipe must be a list of steps, a dict, a preset name {sorted(PRESETS)} or a "
                        f"YAML/JSON path, got {type(recipe).__name__}")
    unknown = sorted(set(recipe) - {"steps", "finetune", "entropy_coding"})
    if unknown:
        raise ValueError(f"recipe: unknown key(s) {unknown}; keys are ['entropy_coding', 'finetune', 'steps']")
    steps = recipe.get("steps")
    if not isinstance(steps, (list, tuple)) or not steps:
        raise ValueError("recipe steps must be a non-empty list")
    parsed = [_step(item, i) for i, item in enumerate(steps)]
    coding = recipe.get("entropy_coding")
    if coding is None:
        coding = any(s.config.entropy_coding for s in parsed)
    if not isinstance(coding, bool):
        raise ValueError(f"recipe: entropy_coding must be true or false, got {coding!r}")
    return Recipe(parsed, _check_finetune(recipe.get("finetune"), "recipe"), coding)


# --------------------------------------------------------------------------- applying steps
def apply_step(model: Any, config: C.Config, calibration_data: Any = None) -> Any:
    """A new model: ``config`` applied to ``model`` through the registered handler of its verb
    (:func:`compresslib.api.apply`)."""
    if not isinstance(config, C.Config):
        raise TypeError(f"step must be a compresslib config, got {type(config).__name__}")
    if config.verb == "prepare_qat":
        raise TypeError("QAT needs training between prepare_qat and convert; it cannot be a recipe step")
    if config.verb in CALIBRATED_VERBS or getattr(config, "needs_calibration", False):  # steps that read inputs
        return api.apply(model, config, calibration_data=calibration_data)
    return api.apply(model, config)


def _fit(model: Any, train_data: Any, settings: dict, hooks: list, teacher: Any, progress_bar: Optional[bool]) -> None:
    framework = framework_of(model)
    kwargs = dict(epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
                  seed=settings["seed"], progress_bar=progress_bar, lr_schedule=settings["lr_schedule"])
    if teacher is not None:
        kwargs["teacher"] = teacher
    if framework == "torch":
        if hooks:
            kwargs["on_step"] = list(hooks)
    elif hooks:
        kwargs["callbacks"] = hooks
    backend(framework, "train").fit(model, train_data, **kwargs)


def finetune_step(model: Any, config: C.Config, settings: dict, train_data: Any = None,
                  finetune: Optional[Callable[[Any], Any]] = None, teacher: Any = None,
                  progress_bar: Optional[bool] = None) -> Any:
    """Fine-tune ``model`` (fresh from ``config``) keeping what the step made; return the tuned model.

    What is kept comes from the tuner registered for ``config``
    (:func:`compresslib.registry.tuner`): unstructured pruning keeps the zeros (and
    follows a schedule), weight sharing moves only centroids. A config without a tuner
    is trained as a plain model, except a quantized one (``verb == "quantize"``), which
    is returned as it is. ``finetune(model)``, when given, trains instead of the built-in
    loop (it receives the model to train in place).
    """
    make = registry.tuner(framework_of(model), config)
    if make is None and config.verb == "quantize":
        return model
    if finetune is None and (train_data is None or settings["epochs"] == 0):
        return model
    tuning = make(model, config) if make is not None else registry.Tuning(model, [], lambda m: m)
    if finetune is not None:
        finetune(tuning.model)
    else:
        _fit(tuning.model, train_data, settings, tuning.hooks, teacher, progress_bar)
    return tuning.finish(tuning.model)


def is_gradual(config: C.Config) -> bool:
    """Whether ``config`` can prune gradually over its fine-tuning: it has a ``sparsity`` and an empty ``schedule``."""
    names = {f.name for f in dataclasses.fields(config)}
    return {"sparsity", "schedule"} <= names and config.schedule is None


def gradual_config(config: C.Magnitude, settings: dict, n_train: int) -> C.Magnitude:
    """``config`` with Zhu & Gupta's schedule over the fine-tuning: sparsity from 0 to ``config.sparsity``
    during the first third of the steps (masks recomputed about 40 times), then fine-tuning at it."""
    total = settings["epochs"] * -(-n_train // settings["batch_size"])
    end = max(1, total // 3)
    return dataclasses.replace(config, schedule=schedules.PolynomialDecay(
        0.0, float(config.sparsity), begin_step=0, end_step=end, frequency=max(1, end // 40)))


def _is_arrays(data: Any) -> bool:
    """``(x, y)`` arrays, as opposed to a stream of ``(x, y)`` batches (a DataLoader, a tf.data.Dataset)."""
    return isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape")


def _rows_per_epoch(train_data: Any, batch_size: int) -> int:
    """Rows of ``(x, y)``; for a stream, its number of batches × ``batch_size`` (what the schedule counts)."""
    if _is_arrays(train_data):
        return len(train_data[0])
    try:
        return len(train_data) * batch_size
    except TypeError:
        raise ValueError("train_data: gradual pruning spreads its schedule over the fine-tuning's steps, "
                         f"and this stream ({type(train_data).__name__}) has no length; give a sized one "
                         "(a DataLoader, a tf.data.Dataset of known cardinality) or set finetune.gradual "
                         "to false") from None


# --------------------------------------------------------------------------- the pipeline
def _measured(model: Any, path: str, name: str, data: Any, measure_kwargs: dict, uncoded: bool,
              instance: Any = None) -> Report:
    """Save ``model`` to ``path`` (without the entropy coders when ``uncoded``), load it back, measure that.

    ``instance``: the recipe's input model, for a file whose classes are the user's: it is loaded onto (a copy
    of) it, as ``load(path, model=...)`` does for the user.
    """
    if uncoded:
        with packing.excluding(*entropy.ENTROPY_CODED):
            size = api.save(model, path)
    else:
        size = api.save(model, path)
    report = api.measure(api.load(path, model=instance), data=data, name=name, **measure_kwargs)
    report.packed_bytes = size
    return report


def _instance(model: Any) -> Any:
    """The input model as the instance to load a stage onto, for a PyTorch model of a user's class (a Hugging
    Face or hand-written ``nn.Module``, whose code a ``.clz`` file does not hold); None otherwise."""
    if framework_of(model) != "torch" or type(model).__module__.split(".")[0] in ("torch", "compresslib"):
        return None
    return model


def compress(model: Any, recipe: Any, *, train_data: Any = None, data: Any = None,
             finetune: Optional[Callable[[Any], Any]] = None, calibration_data: Any = None,
             output: Union[str, os.PathLike, None] = None, progress_bar: Optional[bool] = None,
             measure_kwargs: Optional[dict] = None, packed: bool = True) -> tuple[Any, Comparison]:
    """Apply a recipe to a copy of ``model``, fine-tuning between steps; measure every stage.

    Args:
        model: a PyTorch or Keras model (never changed).
        recipe: a list of configs or step dicts, a dict, a YAML/JSON path, or a preset name
            (``"deep_compression"``); see :func:`load_recipe`.
        train_data: ``(x, y)`` for the built-in fine-tuning (each step's ``finetune`` settings), or a
            stream of ``(x, y)`` batches (a ``DataLoader``, a ``tf.data.Dataset``), read once per epoch.
        data: ``(x, y)`` to measure accuracy (and the latency batch) of each stage.
        finetune: instead of the built-in loop, ``finetune(model)`` trains the model in place
            after each pruning, low-rank or sharing step (zeros and centroids are still kept).
        calibration_data: inputs for the steps that read example inputs (static int8, GPTQ, AWQ, SmoothQuant,
            Wanda, SparseGPT).
        output: write the final ``.clz`` file here too.
        progress_bar: a bar over the stages (default: only in an interactive terminal).
        measure_kwargs: passed to :func:`compresslib.api.measure` (e.g. ``{"latency": False}``).
        packed: measure each stage from its ``.clz`` file (``packed_bytes``, and accuracy of the
            model loaded back); False measures the in-memory models and their native files only.

    Returns:
        ``(compressed_model, comparison)``.

    Example:
        >>> import compresslib as cl                                                       # doctest: +SKIP
        >>> m = cl.zoo.pretrained("lenet300_100", "torch")                                 # doctest: +SKIP
        >>> out, table = compress(m, "deep_compression", train_data=cl.datasets.load_mnist("train", layout="torch"),
        ...                       data=cl.datasets.load_mnist("test", layout="torch"))    # doctest: +SKIP
        >>> table        # input, + Magnitude, + WeightSharing, + entropy coding      # doctest: +SKIP
    """
    framework_of(model)  # a clear TypeError for anything else
    plan = load_recipe(recipe)
    if not isinstance(packed, bool):
        raise TypeError(f"packed must be True or False, got {packed!r}")
    measure_kwargs = dict(measure_kwargs or {})
    if data is None and train_data is not None and "example_input" not in measure_kwargs:
        # torch models need an input to be measured: the first row of the data (or of its first batch)
        first = train_data if _is_arrays(train_data) else next(iter(train_data))
        measure_kwargs["example_input"] = first[0][:1]

    reports = []
    current = model
    with tempfile.TemporaryDirectory() as tmp:
        for i in progress(range(len(plan.steps)), progress_bar, desc="compress"):
            step = plan.steps[i]
            settings = plan.finetune_for(step)
            config = step.config
            if (settings["gradual"] and is_gradual(config)
                    and train_data is not None and finetune is None and settings["epochs"] > 0):
                rows = _rows_per_epoch(train_data, settings["batch_size"])
                config = gradual_config(config, settings, rows)
            current = apply_step(current, config, calibration_data)
            if i == 0:  # measured after the first step, so that a step the model cannot take fails first
                reports.append(api.measure(model, data=data, name="input", **measure_kwargs))
            teacher = model if settings["distill"] else None
            current = finetune_step(current, config, settings, train_data, finetune, teacher, progress_bar)
            name = f"+ {type(step.config).__name__}"
            if packed:
                reports.append(_measured(current, os.path.join(tmp, f"stage{i}.clz"), name, data, measure_kwargs,
                                         uncoded=plan.entropy_coding, instance=_instance(model)))
            else:
                reports.append(api.measure(current, data=data, name=name, **measure_kwargs))
        if plan.entropy_coding:
            path = os.path.join(tmp, "final.clz")
            reports.append(_measured(current, path, "+ entropy coding", data, measure_kwargs, uncoded=False,
                                     instance=_instance(model)))
        if output is not None:
            api.save(current, output)
    return current, compare(reports)


__all__ = ["compress", "load_recipe", "Recipe", "Step", "PRESETS", "apply_step", "finetune_step", "step_types"]

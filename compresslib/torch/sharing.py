"""Weight sharing for PyTorch models: k-means codebooks per layer, and centroid fine-tuning.

* ``share_weights(model, WeightSharing(...))`` returns a copy whose
  ``Linear``/``Conv`` weights hold only their layer's ``2**bits`` centroids
  (k-means from :mod:`compresslib.core.sharing`, the same code the Keras
  backend calls) and their pruned zeros. It is an ordinary float model;
  :func:`compresslib.api.save` finds the codebooks in the values and stores
  each such weight as a codebook plus entropy-coded indices.
* :class:`CentroidTuning` fine-tunes the centroids with the rule of Han et al.
  (2016): a gradient hook on each shared weight replaces every element's
  gradient by the **sum of the gradients of its cluster** (zeros get none).
  Weights of one cluster start equal and then receive equal gradients, so any
  element-wise optimiser (SGD, Adam, ...) moves them together: the weights
  stay shared, and the update is that of the centroid itself. Pass
  ``tuning.model`` to :func:`compresslib.torch.train.fit`; ``finalize()``
  returns a plain model (no hooks) with every cluster snapped to one value.

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(64, 32))
    >>> s = share_weights(m, cl.WeightSharing(bits=3))
    >>> len(torch.unique(s[0].weight)), s[0].weight.shape == m[0].weight.shape
    (8, True)
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from compresslib.configs import WeightSharing, check_config
from compresslib.core import sharing as core
from compresslib.torch.pruning import PRUNABLE
from compresslib.registry import Tuning, register, register_tuner

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_QUIET = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def _layers(model: nn.Module, config: Optional[WeightSharing] = None, warn: bool = True) -> dict[str, nn.Parameter]:
    """``{module name: weight}`` of the layers weight sharing touches (the Linear/Conv layers pruning
    touches); other layers with weights, except normalisation, are named in one warning."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    weights, skipped = {}, []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE) and not getattr(module, "transposed", False):
            weights[name] = module.weight
        elif not isinstance(module, _QUIET) and any(p is not None for p in module._parameters.values()):
            skipped.append(f"{name} ({type(module).__name__})")
    if skipped and warn:
        warnings.warn(f"weight sharing skipped layers of unsupported kinds: {', '.join(skipped)}", stacklevel=3)
    if not weights:
        raise ValueError("model: has no Linear or Conv layer whose weights could be shared")
    if config is not None and config.per_layer_bits:
        unknown = sorted(set(config.per_layer_bits) - set(weights))
        if unknown:
            raise ValueError(f"per_layer_bits: no Linear/Conv layers named {unknown}; they are {list(weights)}")
    return weights


@register("quantize", "torch", WeightSharing)
def share_weights(model: nn.Module, config: WeightSharing, *, calibration_data: Any = None) -> nn.Module:
    """A copy of ``model`` whose Linear/Conv weights are replaced by their k-means centroids.

    Args:
        model: a ``torch.nn.Module`` (not changed), on any device.
        config: :class:`compresslib.configs.WeightSharing` (bits per layer, initialisation, seed).

    Returns:
        The new model; each shared weight holds at most ``2**bits`` distinct non-zero values.

    Example:
        >>> import compresslib as cl
        >>> m = cl.zoo.pretrained("lenet300_100", "torch")
        >>> s = share_weights(m, cl.WeightSharing(bits=4, per_layer_bits={"5": 2}))
        >>> [len(codebooks(s)[n]) for n in ("1", "3", "5")]
        [16, 16, 4]
    """
    check_config(config, WeightSharing)
    new = copy.deepcopy(model)
    modules = dict(new.named_modules())
    for name, w in _layers(new, config).items():
        bits = config.bits_for(name, conv=isinstance(modules[name], _CONV))
        values = w.detach().cpu().float().numpy()
        shared = core.shared_weights(values, bits, init=config.init, seed=config.seed)
        with torch.no_grad():
            w.copy_(torch.from_numpy(shared).to(device=w.device, dtype=w.dtype))
    return new


def codebooks(model: nn.Module) -> dict[str, np.ndarray]:
    """``{layer name: sorted distinct non-zero values}`` of each Linear/Conv weight (its codebook once shared)."""
    return {name: core.clusters(w.detach().cpu().float().numpy())[0]
            for name, w in _layers(model, warn=False).items()}


class CentroidTuning:
    """Fine-tune the centroids of a shared model: gradients of a cluster summed into its centroid.

    ``CentroidTuning(shared)`` copies the model and registers a gradient hook on
    each Linear/Conv weight; train ``tuning.model`` with any optimiser (it can
    also be passed as ``on_step`` to :func:`compresslib.torch.train.fit`, where it
    does nothing: the hooks do the work). Clusters are read from the values
    (:func:`compresslib.core.sharing.clusters`), so a shared model loaded from a
    ``.clz`` file can be tuned too. ``finalize()`` removes the hooks and returns
    a plain copy in eval mode.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.torch import train
        >>> x, y = cl.datasets.load_mnist("test", layout="torch")
        >>> s = share_weights(cl.zoo.pretrained("lenet300_100", "torch"), cl.WeightSharing(bits=3))
        >>> tuning = CentroidTuning(s)
        >>> _ = train.fit(tuning.model, (x[:512], y[:512]), epochs=1, lr=1e-4)
        >>> tuned = tuning.finalize()
        >>> [len(v) for v in codebooks(tuned).values()], bool((tuned[1].weight != s[1].weight).any())
        ([8, 8, 8], True)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model)
        self._handles = []
        self._labels: dict[str, torch.Tensor] = {}
        for name, w in _layers(self.model).items():
            _, labels = core.clusters(w.detach().cpu().float().numpy())
            labels = torch.from_numpy(labels.reshape(-1)).to(w.device)
            self._labels[name] = labels
            self._handles.append(w.register_hook(_summing_hook(labels)))

    def __call__(self, model: nn.Module, step: int) -> None:
        """``on_step`` hook for :func:`compresslib.torch.train.fit` (the gradient hooks already did the work)."""

    def finalize(self) -> nn.Module:
        """A plain copy (no hooks, eval mode) with each cluster set to one value: its mean."""
        for h in self._handles:
            h.remove()
        self._handles = []
        out = copy.deepcopy(self.model).eval()
        weights = _layers(out, warn=False)
        with torch.no_grad():
            for name, labels in self._labels.items():
                w = weights[name]
                flat = w.reshape(-1)
                keep = labels >= 0
                k = int(labels.max()) + 1 if keep.any() else 0
                sums = torch.zeros(k, dtype=torch.float64, device=w.device).index_add_(
                    0, labels[keep], flat[keep].double())
                counts = torch.bincount(labels[keep], minlength=k).clamp(min=1)
                snapped = torch.zeros_like(flat)
                snapped[keep] = (sums / counts)[labels[keep]].to(w.dtype)
                w.copy_(snapped.view_as(w))
        return out


def _summing_hook(labels: torch.Tensor):
    keep = torch.nonzero(labels >= 0).reshape(-1)
    idx = labels[keep]
    k = int(idx.max()) + 1 if idx.numel() else 0

    def hook(grad: torch.Tensor) -> torch.Tensor:
        flat = grad.reshape(-1)
        sums = torch.zeros(k, dtype=grad.dtype, device=grad.device).index_add_(0, idx, flat[keep])
        out = torch.zeros_like(flat)
        out[keep] = sums[idx]
        return out.view_as(grad)

    return hook


@register_tuner("torch", WeightSharing)
def keep_centroids(model, config: WeightSharing) -> Tuning:
    """Fine-tuning after weight sharing: only the centroids move (:class:`CentroidTuning`); the
    result has the same clusters, each at its tuned value."""
    tuning = CentroidTuning(model)
    return Tuning(tuning.model, [], lambda trained: tuning.finalize())


__all__ = ["share_weights", "codebooks", "CentroidTuning", "keep_centroids"]


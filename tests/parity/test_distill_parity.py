"""Knowledge distillation: both frameworks' training loss equals the NumPy reference."""
import numpy as np
import pytest
import torch

from compresslib.core.training import distillation_loss


@pytest.mark.parametrize("alpha,temperature", [(0.0, 4.0), (0.7, 4.0), (1.0, 1.0), (0.5, 10.0)])
def test_distill_loss_same_in_numpy_torch_keras(alpha, temperature):
    import keras

    from compresslib.keras.train import _distill_loss
    from compresslib.torch.train import _distill

    rng = np.random.default_rng(1)
    z = rng.normal(size=(16, 10)).astype(np.float32)
    t = (3 * rng.normal(size=(16, 10))).astype(np.float32)
    y = rng.integers(0, 10, 16)
    ref = distillation_loss(z, y, t, alpha, temperature)
    zt = torch.as_tensor(z)
    hard = torch.nn.functional.cross_entropy(zt, torch.as_tensor(y))
    got_torch = float(_distill(zt, hard, torch.as_tensor(t), alpha, temperature))
    targets = np.concatenate([y[:, None].astype(np.float32), t], axis=1)
    got_keras = float(keras.ops.mean(_distill_loss(alpha, temperature)(targets, z)))
    assert got_torch == pytest.approx(ref, rel=1e-5, abs=1e-6)
    assert got_keras == pytest.approx(ref, rel=1e-5, abs=1e-6)
    assert ref > 0


def test_reference_values():
    z = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    y = np.array([0, 1])
    ce = -np.mean([np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), np.log(np.e / (np.e + 2))])
    assert distillation_loss(z, y, z, alpha=0.0) == pytest.approx(ce)
    assert distillation_loss(z, y, z, alpha=1.0) == pytest.approx(0.0, abs=1e-12)   # student == teacher
    assert distillation_loss(z, y, -z, alpha=1.0) > 0.1
    with pytest.raises(ValueError, match="distill_alpha"):
        distillation_loss(z, y, z, alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(z, y, z, temperature=0)

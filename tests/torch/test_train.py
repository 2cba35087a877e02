import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.torch import models, train


def test_fit_lowers_loss_and_is_seeded(torch_device):
    x, y = cl.datasets.load_mnist("train", layout="torch")
    data = (x[:512], y[:512])
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        m = models.build("lenet300_100").to(torch_device)
        losses.append(train.fit(m, data, epochs=2, seed=3))
    assert losses[0] == losses[1]
    assert losses[0][1] < losses[0][0]


def test_bad_arguments():
    m = models.build("lenet300_100")
    with pytest.raises(ValueError, match="data"):
        train.fit(m, np.zeros((4, 784)))
    with pytest.raises(ValueError, match="epochs"):
        train.fit(m, (np.zeros((4, 1, 28, 28)), np.zeros(4)), epochs=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        train.fit(m, (np.zeros((4, 1, 28, 28)), np.zeros(4)), lr_schedule="cosine")
    with pytest.raises(ValueError, match="name must be one of"):
        models.build("alexnet")

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


def test_distill_from_an_identical_teacher_starts_at_zero_soft_loss(torch_device):
    x, y = cl.datasets.load_mnist("train", layout="torch")
    data = (x[:512], y[:512])
    teacher = cl.zoo.pretrained("lenet300_100", framework="torch").to(torch_device)
    student = cl.zoo.pretrained("lenet300_100", framework="torch").to(torch_device)
    soft = train.fit(student, data, epochs=1, lr=1e-5, teacher=teacher, distill_alpha=1.0)
    hard = train.fit(cl.zoo.pretrained("lenet300_100", framework="torch").to(torch_device), data, epochs=1, lr=1e-5)
    assert soft[0] < 1e-3 < hard[0]          # KL(teacher ‖ itself) = 0; cross-entropy of a 96 % model is not
    logits = train.predict(teacher, x[:512])
    again = train.fit(cl.zoo.pretrained("lenet300_100", framework="torch").to(torch_device), data, epochs=1,
                      lr=1e-5, teacher=logits, distill_alpha=1.0)
    assert again == pytest.approx(soft, rel=1e-4, abs=1e-7)   # a model and its logits are the same teacher


def test_distill_bad_arguments():
    m = models.build("lenet300_100")
    data = (np.zeros((4, 1, 28, 28), np.float32), np.zeros(4))
    with pytest.raises(ValueError, match="teacher: expected logits of shape"):
        train.fit(m, data, teacher=np.zeros((3, 10)))
    with pytest.raises(ValueError, match="teacher: must be another model"):
        train.fit(m, data, teacher=m)
    with pytest.raises(TypeError, match="teacher must be"):
        train.fit(m, data, teacher="big")
    with pytest.raises(ValueError, match="distill_alpha"):
        train.fit(m, data, teacher=np.zeros((4, 10)), distill_alpha=2.0)


def test_recalibrate_batchnorm_sets_the_statistics_of_the_data():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3, momentum=0.1))
    x = np.random.default_rng(0).normal(3.0, 2.0, (96, 2, 4, 4)).astype(np.float32)
    before = m[0].weight.clone()
    assert train.recalibrate_batchnorm(m, x, batch_size=32) == 1
    with torch.no_grad():
        h = m[0](torch.from_numpy(x)).double()
    mean = h.mean(dim=(0, 2, 3))
    # three equal batches: the mean of the batch means is the mean of all; variance: the batches' unbiased ones
    var = torch.stack([h[i:i + 32].var(dim=(0, 2, 3)) for i in (0, 32, 64)]).mean(0)
    assert torch.allclose(m[1].running_mean.double(), mean, atol=1e-5)
    assert torch.allclose(m[1].running_var.double(), var, atol=1e-4)
    assert not m.training and m[1].momentum == 0.1 and torch.equal(m[0].weight, before)
    assert train.recalibrate_batchnorm(torch.nn.Sequential(torch.nn.Linear(2, 2)), x[:, :, 0, 0]) == 0
    with pytest.raises(ValueError, match="batch_size must be"):
        train.recalibrate_batchnorm(m, x, batch_size=0)

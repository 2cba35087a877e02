import numpy as np
import pytest

import compresslib as cl
from compresslib.keras import models, train


def test_fit_lowers_loss_and_is_seeded():
    x, y = cl.datasets.load_mnist("train", layout="keras")
    data = (x[:512], y[:512])
    import keras

    losses = []
    for _ in range(2):
        keras.utils.set_random_seed(0)  # initial weights
        losses.append(train.fit(models.build("lenet300_100"), data, epochs=2, seed=3))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert losses[0][1] < losses[0][0]


def test_bad_arguments():
    m = models.build("lenet300_100")
    with pytest.raises(ValueError, match="data"):
        train.fit(m, np.zeros((4, 28, 28, 1)))
    with pytest.raises(ValueError, match="epochs"):
        train.fit(m, (np.zeros((4, 28, 28, 1)), np.zeros(4)), epochs=0)
    with pytest.raises(ValueError, match="name must be one of"):
        models.build("alexnet")

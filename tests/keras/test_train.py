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


def test_distill_from_an_identical_teacher_starts_at_zero_soft_loss():
    x, y = cl.datasets.load_mnist("train", layout="keras")
    data = (x[:512], y[:512])
    teacher = cl.zoo.pretrained("lenet300_100", framework="keras")
    soft = train.fit(cl.zoo.pretrained("lenet300_100", framework="keras"), data, epochs=1, lr=1e-5,
                     teacher=teacher, distill_alpha=1.0)
    hard = train.fit(cl.zoo.pretrained("lenet300_100", framework="keras"), data, epochs=1, lr=1e-5)
    assert soft[0] < 1e-3 < hard[0]          # KL(teacher ‖ itself) = 0; cross-entropy of a 96 % model is not
    logits = train.predict(teacher, x[:512])
    again = train.fit(cl.zoo.pretrained("lenet300_100", framework="keras"), data, epochs=1, lr=1e-5,
                      teacher=logits, distill_alpha=1.0)
    np.testing.assert_allclose(again, soft, rtol=1e-3, atol=1e-6)


def test_distill_bad_arguments():
    m = models.build("lenet300_100")
    data = (np.zeros((4, 28, 28, 1), np.float32), np.zeros(4))
    with pytest.raises(ValueError, match="teacher: expected logits of shape"):
        train.fit(m, data, teacher=np.zeros((3, 10)))
    with pytest.raises(ValueError, match="teacher: must be another model"):
        train.fit(m, data, teacher=m)
    with pytest.raises(TypeError, match="teacher must be"):
        train.fit(m, data, teacher="big")
    with pytest.raises(ValueError, match="temperature"):
        train.fit(m, data, teacher=np.zeros((4, 10)), temperature=-1.0)


def test_recalibrate_batchnorm_sets_the_statistics_of_the_data():
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(3, 1),
                          keras.layers.BatchNormalization()])
    x = np.random.default_rng(0).normal(3.0, 2.0, (96, 4, 4, 2)).astype(np.float32)
    kernel = m.layers[0].get_weights()[0].copy()
    assert train.recalibrate_batchnorm(m, x, batch_size=32) == 1
    h = keras.ops.convert_to_numpy(m.layers[0](x)).astype(np.float64)
    bn = m.layers[1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), h.mean((0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), h.var((0, 1, 2)), atol=1e-4)
    np.testing.assert_array_equal(m.layers[0].get_weights()[0], kernel)
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    assert train.recalibrate_batchnorm(plain, x[:, 0, 0]) == 0

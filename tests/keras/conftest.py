"""Models shared by the Keras tests: subclassed ones for the verbs that refuse or handle them, and a small
attention block for the calibrated (GPTQ, AWQ, Wanda, SparseGPT) tests and their .clz storage."""
import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras


class SubNet(keras.Model):
    """A subclassed model (auto config: its __init__ takes no arguments)."""

    def __init__(self):
        super().__init__()
        self.d = keras.layers.Dense(2)

    def call(self, x):
        return self.d(x)


class Opaque(keras.Model):
    """A subclassed model Keras cannot re-create: its __init__ takes a layer object, and no get_config."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def call(self, x):
        return self.head(x)


def _built(model: keras.Model, features: int) -> keras.Model:
    model(np.zeros((1, features), np.float32))
    return model


@pytest.fixture
def subnet() -> keras.Model:
    return _built(SubNet(), 4)


@pytest.fixture
def opaque() -> keras.Model:
    """An ``Opaque`` around ``Dense(3)``, built for 4 features."""
    return _built(Opaque(keras.layers.Dense(3)), 4)


@pytest.fixture(scope="module")
def attention():
    """A pre-LN attention block and MLP with three outlier input channels: (model, calibration, test data)."""
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 32))
    h = keras.layers.LayerNormalization(name="norm")(i)
    a = keras.layers.MultiHeadAttention(2, 16, name="mha")(h, h)
    x = keras.layers.Add()([i, a])
    f = keras.layers.Dense(32, name="fc2")(keras.layers.Dense(64, activation="gelu", name="fc1")(x))
    m = keras.Model(i, keras.layers.Dense(8, name="head")(keras.layers.Add()([x, f])))
    rng = np.random.default_rng(1)
    scale = np.r_[np.full(3, 6.0), np.ones(29)].astype("float32")
    return m, rng.normal(size=(64, 8, 32)).astype("float32") * scale, rng.normal(size=(32, 8, 32)).astype("float32") * scale

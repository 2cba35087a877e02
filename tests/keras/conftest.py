"""Subclassed Keras models shared by the tests of the verbs that refuse or handle them."""
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

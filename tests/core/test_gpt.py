"""compresslib.core.gpt: the char_gpt spec, token-batch checks and evaluation windows."""
from __future__ import annotations

import numpy as np
import pytest

from compresslib.core.gpt import CHAR_GPT, GPTSpec, check_ids, windows


def test_char_gpt_sizes():
    assert (CHAR_GPT.vocab, CHAR_GPT.context, CHAR_GPT.d_model, CHAR_GPT.layers, CHAR_GPT.heads) == (80, 128, 128, 6, 4)
    assert CHAR_GPT.head_dim == 32
    assert CHAR_GPT.parameters() == 1_226_832


@pytest.mark.parametrize("field, value", [("vocab", 0), ("heads", 3), ("layers", True), ("context", 1.5)])
def test_spec_refuses_bad_sizes(field, value):
    kwargs = dict(vocab=10, context=8, d_model=16, layers=1, heads=2)
    kwargs[field] = value
    with pytest.raises(ValueError, match="heads" if field == "heads" else field):
        GPTSpec(**kwargs)


@pytest.mark.parametrize("shape", [(2, 129), (2, 0), (4,), (1, 2, 3)])
def test_check_ids_refuses(shape):
    with pytest.raises(ValueError, match="ids must be"):
        check_ids(shape, 128)


def test_check_ids_accepts_up_to_context():
    check_ids((3, 128), 128)
    check_ids((1, 1), 128)


def test_windows_are_consecutive_and_int64():
    w = windows(np.arange(100, dtype=np.int32), 8, count=3, start=5)
    assert w.dtype == np.int64 and w.shape == (3, 8)
    assert w.ravel().tolist() == list(range(5, 29))
    assert windows(np.arange(100), 8).shape == (12, 8)
    with pytest.raises(ValueError, match="count"):
        windows(np.arange(10), 8, count=2)

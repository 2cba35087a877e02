"""Chapter 6's cached Deep Compression sweep (scripts/fashion_deep_compression.py) agrees with its files.

The chapter's Fashion-MNIST table reads ``compresslib/data/results/fashion_dc/record.json``. This test
checks the record's bookkeeping (accuracies, intervals and paired tests = its per-image bits; bytes = the
shipped ``.clz`` files; sizes fall with fewer bits and more zeros), re-derives the one-shot point from
the zoo image by image, and checks two shipped files image by image in both frameworks, their codebooks
included.
"""
import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.core import stats

from tests.cached_results import RESULTS as ALL_RESULTS  # noqa: E402  (puts scripts/ on the path)

RESULTS = ALL_RESULTS / "fashion_dc"
RECORD = ("fashion_dc", "fashion_deep_compression")  # the conftest's record fixture reads it
import fashion_deep_compression as s  # noqa: E402  (the script: its one_shot, correct, settings)


def check_entry(e: dict, original: np.ndarray) -> np.ndarray:
    bits = stats.unpack_correctness(e["correct"], e["total"])
    assert e["total"] == 10_000 and int(bits.sum()) == e["correct_count"] == round(e["accuracy"] * 1e4)
    assert tuple(e["interval"]) == stats.wilson_interval(e["correct_count"], 10_000)
    pr = stats.paired(None, original, bits)
    assert (pr.only_a, pr.only_b, pr.p_value, pr.verdict) == (
        e["only_original"], e["only_model"], e["mcnemar_p"], e["verdict"])
    assert e["drop_pt"] == pytest.approx(-pr.difference_pt)
    return bits


def test_the_record_is_consistent(record):
    points = record["points"]
    assert sorted(points) == sorted(f"s{sp}_b{b}" for sp in s.SPARSITIES for b in s.BITS)
    orig = {fw: stats.unpack_correctness(record["original"][fw]["correct"], 10_000) for fw in ("torch", "keras")}
    assert orig["torch"].sum() == orig["keras"].sum() == 9464  # the zoo's 94.64 %, both frameworks
    check_entry(record["one_shot"]["torch"], orig["torch"])
    for e in record["pruned"].values():
        check_entry(e, orig["torch"])
    for p in points.values():
        for fw in ("torch", "keras"):
            e = p[fw]
            check_entry(e, orig[fw])
            assert e["clz_bytes"] == (RESULTS / f"{fw}_s{p['sparsity']}_b{p['bits']}.clz").stat().st_size
            assert e["clz_bytes"] < e["uncoded_bytes"]  # entropy coding pays on every point
    for fw in ("torch", "keras"):  # fewer bits and more zeros: smaller files
        for sp in s.SPARSITIES:
            sizes = [points[f"s{sp}_b{b}"][fw]["clz_bytes"] for b in sorted(s.BITS)]
            assert sizes == sorted(sizes), (fw, sp, sizes)
        for b in s.BITS:
            assert points[f"s0.9_b{b}"][fw]["clz_bytes"] < points[f"s0.7_b{b}"][fw]["clz_bytes"]


def test_the_one_shot_point_rederived_from_the_zoo(record, fashion):
    """Prune + share of the zoo network without fine-tuning, first 1,000 images, image by image."""
    x, _, y = fashion
    rec = record["one_shot"]
    torch.set_num_threads(2)
    m = s.one_shot(cl.zoo.pretrained(s.MODEL, framework="torch").eval(), rec["sparsity"], rec["bits"])
    cached = stats.unpack_correctness(rec["torch"]["correct"], 10_000)[:1000]
    assert (s.correct(m, x[:1000], y[:1000]) == cached).all()


@pytest.mark.parametrize("tag,bits", [("s0.9_b2", 2), ("s0.7_b5", 5)])
def test_shipped_files_match_the_record(record, fashion, tag, bits):
    x, xk, y = fashion
    rec = record["points"][tag]
    t, k = cl.load(RESULTS / f"torch_{tag}.clz"), cl.load(RESULTS / f"keras_{tag}.clz")
    from compresslib.torch.sharing import codebooks

    sizes = [len(v) for v in codebooks(t).values()]
    assert max(sizes) <= 2 ** bits and len(sizes) == 22  # 21 convolutions (two 1×1 shortcuts), the classifier
    for fw, model, xs in (("torch", t, x), ("keras", k, xk)):
        cached = stats.unpack_correctness(rec[fw]["correct"], 10_000)[:500]
        assert (s.correct(model, xs[:500], y[:500]) == cached).all(), fw
    with torch.no_grad():
        logits_t = t.eval()(torch.from_numpy(x[:64])).numpy()
    np.testing.assert_allclose(np.asarray(k(xk[:64])), logits_t, atol=1e-4)

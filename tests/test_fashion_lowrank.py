"""Chapter 4's cached low-rank results (scripts/fashion_lowrank.py) agree with the shipped files and the zoo.

The chapter's Fashion-MNIST table reads ``compresslib/data/results/fashion_lowrank/record.json``. This
test checks the record's own bookkeeping (accuracies, counts, paired tests = its per-image bits; params,
MACs and bytes = the shipped ``.clz`` files), re-derives one cached point from scratch (the decomposition
of the zoo network before fine-tuning, image by image), checks the shipped fine-tuned files image by
image in both frameworks, and that the Keras twin's filling refuses a decomposition of other ranks.
"""
import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.core import stats

from tests.cached_results import RESULTS as ALL_RESULTS  # noqa: E402  (puts scripts/ on the path)

RESULTS = ALL_RESULTS / "fashion_lowrank"
RECORD = ("fashion_lowrank", "fashion_lowrank")  # the conftest's record fixture reads it
import fashion_lowrank as s  # noqa: E402  (the script: its decompose, correct, ranks)


def test_the_record_is_consistent(record):
    assert sorted(r["energy"] for r in record.values()) == [0.86, 0.91]
    for rec in record.values():
        orig = {fw: stats.unpack_correctness(rec["original"][fw]["correct"], 10_000) for fw in ("torch", "keras")}
        assert orig["torch"].sum() == orig["keras"].sum() == 9476  # the zoo's 94.76 %, both frameworks
        for fw in ("torch", "keras"):
            for e in (rec[fw], rec["before_finetune"][fw]):
                bits = stats.unpack_correctness(e["correct"], e["total"])
                assert e["total"] == 10_000 and int(bits.sum()) == e["correct_count"] == round(e["accuracy"] * 1e4)
                assert tuple(e["interval"]) == stats.wilson_interval(e["correct_count"], 10_000)
                pr = stats.paired(None, orig[fw], bits)
                assert (pr.only_a, pr.only_b, pr.p_value, pr.verdict) == (
                    e["only_original"], e["only_model"], e["mcnemar_p"], e["verdict"])
                assert e["drop_pt"] == pytest.approx(-pr.difference_pt)
            assert rec[fw]["clz_bytes"] == (RESULTS / f"{fw}_e{rec['energy']}.clz").stat().st_size
        # the same network in both frameworks: params equal; the two cuts about 2x and 3x in MACs
        assert rec["torch"]["params"] == rec["keras"]["params"] < rec["original"]["folded_params"] / 2
        ratio = rec["original"]["folded_macs"] / rec["torch"]["macs"]
        assert ratio == pytest.approx(2.1 if rec["energy"] == 0.91 else 3.1, abs=0.1)


def test_one_point_rederived_from_the_zoo(record, fashion):
    """The stronger cut right after decomposition, before fine-tuning: first 1,000 images, image by image."""
    x, _, y = fashion
    rec = record["e0.86"]
    torch.set_num_threads(2)
    teacher = cl.zoo.pretrained(s.TEACHER, framework="torch").eval()
    d = s.decompose(teacher, 0.86)
    assert s.ranks(d) == rec["ranks"]
    live = s.correct(d, x[:1000], y[:1000])
    cached = stats.unpack_correctness(rec["before_finetune"]["torch"]["correct"], 10_000)[:1000]
    assert (live == cached).all()


def test_shipped_files_match_the_record(record, fashion):
    x, xk, y = fashion
    rec = record["e0.91"]
    t = cl.load(RESULTS / "torch_e0.91.clz")
    k = cl.load(RESULTS / "keras_e0.91.clz")
    assert cl.measure(t, example_input=x[:1], latency=False).macs == rec["torch"]["macs"]
    for fw, model, xs in (("torch", t, x), ("keras", k, xk)):
        cached = stats.unpack_correctness(rec[fw]["correct"], 10_000)[:500]
        assert (s.correct(model, xs[:500], y[:500]) == cached).all(), fw
    with torch.no_grad():
        logits_t = t(torch.from_numpy(x[:64])).numpy()
    np.testing.assert_allclose(np.asarray(k(xk[:64])), logits_t, atol=1e-4)


def test_transfer_reproduces_the_shipped_keras_file(record, fashion):
    """The script's path (``cl.transfer(..., like=<folded Keras decomposition>)``) on the shipped torch file
    gives exactly the shipped Keras file's logits."""
    _, xk, _ = fashion
    t = cl.load(RESULTS / "torch_e0.86.clz")
    like = cl.fold_batchnorm(s.decompose(cl.zoo.pretrained(s.TEACHER, framework="keras"), 0.86))
    new = cl.transfer(t, framework="keras", like=like)
    shipped = cl.load(RESULTS / "keras_e0.86.clz")
    np.testing.assert_array_equal(np.asarray(new(xk[:64])), np.asarray(shipped(xk[:64])))


def test_filling_the_keras_twin_carries_the_factors_and_refuses_other_ranks():
    one = ["layer1.0.conv1"]  # one layer: the check is per layer, and Tucker of every layer takes time
    t = cl.decompose(cl.zoo.pretrained(s.TEACHER, framework="torch").eval(), cl.Tucker(energy=0.91), layers=one)
    keras_ref = cl.zoo.pretrained(s.TEACHER, framework="keras")
    same = cl.decompose(keras_ref, cl.Tucker(energy=0.91), layers=one)
    filled = cl.transfer(t, framework="keras", like=same)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    with torch.no_grad():
        ref = t.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.asarray(filled(x)), ref, atol=1e-4)
    other = cl.decompose(keras_ref, cl.Tucker(energy=0.86), layers=one)
    with pytest.raises(ValueError, match="layer 'layer1.0.conv1.0'.*shape"):
        cl.transfer(t, framework="keras", like=other)

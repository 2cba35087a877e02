import pytest

from compresslib import configs as c


@pytest.mark.parametrize("factory,field", [
    (lambda: c.Magnitude(sparsity=1.0), "sparsity"),
    (lambda: c.Magnitude(sparsity=-0.1), "sparsity"),
    (lambda: c.Magnitude(0.5, scope="net"), "scope"),
    (lambda: c.Structured(ratio=1.0), "ratio"),
    (lambda: c.NM(n=4, m=4), "n"),
    (lambda: c.Int8Static(observer="max"), "observer"),
    (lambda: c.WeightOnly(bits=3), "bits"),
    (lambda: c.WeightOnly(group_size=0), "group_size"),
    (lambda: c.QAT(weight_bits=1), "weight_bits"),
    (lambda: c.QAT(weight_bits=9), "weight_bits"),
    (lambda: c.SVD(), "exactly one"),
    (lambda: c.SVD(rank=4, energy=0.9), "exactly one"),
    (lambda: c.SVD(rank=0), "rank"),
    (lambda: c.SVD(energy=0.0), "energy"),
    (lambda: c.SVD(energy=1.5), "energy"),
    (lambda: c.Tucker(ranks=(4,)), "ranks"),
    (lambda: c.Tucker(ranks=(4, 0)), "ranks"),
    (lambda: c.CP(rank=0), "rank"),
])
def test_bad_values_name_the_field(factory, field):
    with pytest.raises(ValueError, match=field):
        factory()


def test_good_values():
    assert c.Magnitude(0.0).sparsity == 0.0
    assert c.NM().n == 2 and c.NM().m == 4
    assert c.SVD(energy=1.0).energy == 1.0
    assert c.Tucker(ranks=(3, 5)).ranks == (3, 5)
    assert c.QAT(weight_bits=4).activation_bits == 8


def test_check_config_lists_allowed():
    with pytest.raises(TypeError, match="CP, SVD, Tucker"):
        c.check_config(c.Magnitude(0.5), c.LowRankConfig)
    assert c.check_config(c.SVD(rank=2), c.LowRankConfig).rank == 2

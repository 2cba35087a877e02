"""compresslib.timing: one interleaved timer for torch, Keras, runtime models and callables."""
import time

import numpy as np
import pytest
import torch

from compresslib.timing import interleaved_latency, interleaved_times, paired_ratio, time_calls


def test_time_calls_counts_runs_and_measures_sleep():
    t = time_calls(lambda x: time.sleep(0.002), None, runs=5, warmup=1)
    assert len(t) == 5 and min(t) >= 1.9


def test_interleaved_rounds_and_spread():
    calls = []
    models = {"a": lambda x: calls.append("a"), "b": lambda x: calls.append("b")}
    times = interleaved_times(models, np.zeros((2, 2), np.float32), rounds=3, runs=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6}
    assert calls[:6] == ["a"] * 3 + ["b"] * 3  # a's round (1 warm-up + 2 runs), then b's: interleaved
    assert calls[6:12] == ["b"] * 3 + ["a"] * 3  # the next round starts one model later
    med = interleaved_latency(models, np.zeros((2, 2)), rounds=2, runs=2, spread=True)
    assert set(med) == {"a", "b"} and all(len(v) == 2 for v in med.values())


def test_torch_module_gets_a_tensor():
    lin = torch.nn.Linear(4, 2)
    out = interleaved_latency({"lin": lin}, np.zeros((3, 4), np.float32), rounds=1, runs=2)
    assert out["lin"] > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="models must be"):
        interleaved_latency({}, np.zeros(1))
    with pytest.raises(ValueError, match="rounds and runs"):
        interleaved_latency({"a": lambda x: x}, np.zeros(1), rounds=0)
    with pytest.raises(TypeError, match="cannot time"):
        interleaved_latency({"a": 3}, np.zeros(1))


def test_paired_ratio_alternates_and_measures():
    calls = []
    slow = lambda x: (calls.append("b"), time.sleep(0.003))  # noqa: E731
    fast = lambda x: (calls.append("a"), time.sleep(0.001))  # noqa: E731
    r = paired_ratio(fast, slow, None, pairs=12, warmup=1)
    assert r["pairs"] == 12 and 2.0 < r["ratio"] < 3.5 and r["a_ms"] < r["b_ms"]
    assert calls[:8] == ["a", "a", "b", "b", "a", "b", "b", "a"]  # warm-ups (+1 call each), then a-b, b-a
    with pytest.raises(ValueError, match="pairs must be"):
        paired_ratio(fast, slow, None, pairs=0)


def test_paired_ratio_times_torch_modules_on_tensors():
    small, big = torch.nn.Linear(16, 4), torch.nn.Sequential(torch.nn.Linear(16, 2048), torch.nn.Linear(2048, 2048))
    r = paired_ratio(small, big, np.zeros((32, 16), np.float32), pairs=20, warmup=2)
    assert r["pairs"] == 20 and r["ratio"] > 1.5  # NumPy in, a tensor for the modules; the big one is slower


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_torch_models_of_any_float_dtype_get_their_dtype(dtype):
    # what Float16/BFloat16 return: a float32 batch used to die in the warm-up ("bias type (c10::Half)")
    seen = []
    conv = torch.nn.Conv2d(1, 2, 3).to(dtype)
    conv.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    out = interleaved_latency({"conv": conv}, np.zeros((4, 1, 8, 8), np.float32), rounds=1, runs=2, warmup=1)
    assert out["conv"] > 0 and set(seen) == {dtype}
    r = paired_ratio(conv, conv, np.zeros((4, 1, 8, 8), np.float32), pairs=2, warmup=0)
    assert r["pairs"] == 2


def test_torch_int_inputs_and_tuples_keep_their_dtype():
    emb = torch.nn.Embedding(10, 4).half()
    out = interleaved_latency({"emb": emb}, np.array([[1, 2, 3]], np.int64), rounds=1, runs=2)
    assert out["emb"] > 0


def test_keras_model_with_a_float16_input_gets_float16():
    import keras

    from compresslib.timing import _keras_example

    inp = keras.Input((4,), dtype="float16")
    model = keras.Model(inp, keras.layers.Dense(2, dtype="float16")(inp))
    ex = _keras_example(model, np.zeros((3, 4), np.float32))
    assert ex.dtype == np.float16 and ex.shape == (3, 4)
    assert _keras_example(model, np.zeros((3, 4), np.int32)).dtype == np.int32  # integers are left alone
    assert interleaved_latency({"m": model}, np.zeros((3, 4), np.float32), rounds=1, runs=2)["m"] > 0

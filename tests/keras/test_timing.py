"""compresslib.timing on Keras models: the same timer as for torch and runtime models."""
import keras
import numpy as np

from compresslib.timing import interleaved_latency, paired_ratio


def test_paired_ratio_times_keras_models():
    small = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4)])
    big = keras.Sequential([keras.Input((16,)), keras.layers.Dense(2048), keras.layers.Dense(2048),
                            keras.layers.Dense(4)])
    x = np.zeros((32, 16), np.float32)
    r = paired_ratio(small, big, x, pairs=20, warmup=2)
    assert r["pairs"] == 20 and r["a_ms"] > 0 and r["ratio"] > 1.5  # two 2048×2048 layers cost more than one 16×4
    assert set(interleaved_latency({"small": small}, x, rounds=1, runs=2)) == {"small"}

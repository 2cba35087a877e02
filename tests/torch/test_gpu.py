"""GPU configs: Float8Dynamic, Int8DynamicCUDA, Int4WeightOnlyCUDA, Sparse24.

On CPU (every machine): each is refused before any work with an error naming ``model``; the
checks that need a GPU (compute capability, package, dtype, shapes, 2:4 pattern) are exercised
through the functions that make them; the torchao conversion plumbing runs with int8 (whose
torchao tensor also runs on CPU). On CUDA: the real conversions, their agreement with the
bf16 model, their device, the input untouched, save refused.
"""
from __future__ import annotations

import copy
import sys
import warnings

import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.torch import gpu

GPU_CONFIGS = [cl.Float8Dynamic(), cl.Float8Dynamic(granularity="tensor"), cl.Int8DynamicCUDA(),
               cl.Int4WeightOnlyCUDA(), cl.Sparse24()]
IDS = ["fp8_row", "fp8_tensor", "int8_cuda", "int4_cuda", "sparse24"]


def _mlp(width: int = 256, out: int = 64, dtype=torch.float32, device="cpu") -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, out)).to(device=device, dtype=dtype)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.detach().float().flatten(1), b.detach().float().flatten(1)).mean())


def _capability() -> tuple:
    return torch.cuda.get_device_capability() if torch.cuda.is_available() else (0, 0)


# --------------------------------------------------------------------------- CPU: refusals before any work


@pytest.mark.parametrize("config", GPU_CONFIGS, ids=IDS)
def test_cpu_model_refused_before_any_work(config, monkeypatch):
    m = _mlp(dtype=torch.bfloat16)
    before = _state(m)
    monkeypatch.setattr(gpu, "convert", lambda *a, **k: pytest.fail("converted a CPU model"))
    monkeypatch.setattr(gpu, "plan", lambda *a, **k: pytest.fail("planned a CPU model"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"^model: {type(config).__name__} runs on CUDA GPUs only .* the model "
                                             r"is on cpu; move it with model.to\('cuda'\)"):
            cl.quantize(m, config)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("config", GPU_CONFIGS, ids=IDS)
def test_not_a_module_is_a_type_error(config):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        gpu.check_device(object(), config)


def _fake_gpu(monkeypatch, capability, name="NVIDIA A100-SXM4-80GB"):
    """Make the checks see a model on cuda:0 of this compute capability (no GPU needed)."""
    monkeypatch.setattr(gpu.inputs, "model_device", lambda model: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.version, "hip", None)


def test_fp8_refused_on_a_gpu_without_fp8(monkeypatch):
    _fake_gpu(monkeypatch, (8, 0))
    with pytest.raises(ValueError, match=r"model: Float8Dynamic needs a GPU of compute capability 8\.9 or newer .*"
                                         r"A100-SXM4-80GB \(8\.0\)\. Int8DynamicCUDA and Int4WeightOnlyCUDA run on 8\.0"):
        gpu.check_device(_mlp(), cl.Float8Dynamic())
    assert gpu.check_device(_mlp(), cl.Int8DynamicCUDA()) == torch.device("cuda", 0)  # 8.0 is enough for int8


@pytest.mark.parametrize("config", GPU_CONFIGS, ids=IDS)
def test_old_gpu_refused(config, monkeypatch):
    _fake_gpu(monkeypatch, (7, 0), "Tesla V100")
    with pytest.raises(ValueError, match=r"model: .* needs a GPU of compute capability \d\.\d or newer .*Tesla V100"):
        gpu.check_device(_mlp(), config)


def test_h100_passes_the_device_checks(monkeypatch):
    _fake_gpu(monkeypatch, (9, 0), "NVIDIA H100")
    for config in GPU_CONFIGS:
        assert gpu.check_device(_mlp(), config).type == "cuda"


def test_missing_torchao_is_an_import_error_naming_it(monkeypatch):
    _fake_gpu(monkeypatch, (9, 0))
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao -> ImportError
    with pytest.raises(ImportError, match=r"Int8DynamicCUDA needs torchao \(pip install 'torchao>=0.18'\)"):
        gpu.check_device(_mlp(), cl.Int8DynamicCUDA())
    assert gpu.check_device(_mlp(), cl.Sparse24()).type == "cuda"  # torch's own kernels: no torchao needed


def test_old_torchao_is_refused(monkeypatch):
    _fake_gpu(monkeypatch, (9, 0))
    fake = type(sys)("torchao")
    fake.__version__ = "0.9.0"
    monkeypatch.setitem(sys.modules, "torchao", fake)
    with pytest.raises(ImportError, match=r"needs torchao >= 0\.18, found 0\.9\.0"):
        gpu.check_device(_mlp(), cl.Float8Dynamic())


@pytest.mark.parametrize("config,dtype,ok", [
    (cl.Float8Dynamic(), torch.float32, False),
    (cl.Float8Dynamic(), torch.bfloat16, True),
    (cl.Float8Dynamic(granularity="tensor"), torch.float32, True),
    (cl.Int8DynamicCUDA(), torch.float32, True),
    (cl.Int4WeightOnlyCUDA(), torch.float16, False),
    (cl.Int4WeightOnlyCUDA(), torch.bfloat16, True),
    (cl.Sparse24(), torch.float32, False),
    (cl.Sparse24(), torch.float16, True),
])
def test_dtype_check(config, dtype, ok):
    m = _mlp(dtype=dtype)
    if ok:
        assert gpu.check_dtype(m, config) == dtype
    else:
        with pytest.raises(ValueError, match=r"^model: .* takes Linear weights in .*the model has "
                                             rf"{str(dtype).removeprefix('torch.')}; convert it first"):
            gpu.check_dtype(m, config)


def test_plan_names_the_layers_left_as_they_are():
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10), nn.Linear(10, 4))
    converted, skipped = gpu.plan(m, cl.Float8Dynamic())
    assert converted == ["0"] and skipped == {"2": "sides 10×64 not multiples of 16", "3": "sides 4×10 not multiples of 16"}
    converted, skipped = gpu.plan(m, cl.Int4WeightOnlyCUDA(group_size=32))
    assert converted == ["0", "2"] and skipped == {"3": "fan-in 10 not a multiple of group_size 32"}
    with pytest.raises(ValueError, match=r"model: Float8Dynamic found no Linear layer its kernel takes \(0: sides 10×6"):
        gpu.plan(nn.Sequential(nn.Linear(6, 10)), cl.Float8Dynamic())
    with pytest.raises(ValueError, match="it has no nn.Linear layer"):
        gpu.plan(nn.Sequential(nn.Conv2d(3, 16, 3)), cl.Int8DynamicCUDA())


def test_plan_sparse24_takes_only_2_4_layers_of_kernel_shapes():
    m = _mlp(width=128, out=64)
    pruned = cl.prune(m, cl.NM(2, 4))
    mixed = copy.deepcopy(pruned)
    with torch.no_grad():
        mixed[2].weight.copy_(m[2].weight)  # one dense layer
    converted, skipped = gpu.plan(mixed, cl.Sparse24())
    assert converted == ["0", "4"] and skipped == {"2": "not 2:4 sparse (prune it with cl.prune(model, cl.NM(2, 4)) first)"}
    odd = cl.prune(nn.Sequential(nn.Linear(64, 48)), cl.NM(2, 4))
    with pytest.raises(ValueError, match=r"model: Sparse24 found no Linear layer .*not 2:4 sparse"):
        gpu.plan(m, cl.Sparse24())
    with pytest.raises(ValueError, match=r"sides 48×64 not multiples of 32×64"):
        gpu.plan(odd, cl.Sparse24())


def test_torchao_configs_match():
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig, Int4WeightOnlyConfig,
                                      Int8DynamicActivationInt8WeightConfig, PerRow, PerTensor)

    row = gpu.torchao_config(cl.Float8Dynamic())
    assert isinstance(row, Float8DynamicActivationFloat8WeightConfig) and all(isinstance(g, PerRow) for g in row.granularity)
    tensor = gpu.torchao_config(cl.Float8Dynamic(granularity="tensor"))
    assert all(isinstance(g, PerTensor) for g in tensor.granularity)
    assert isinstance(gpu.torchao_config(cl.Int8DynamicCUDA()), Int8DynamicActivationInt8WeightConfig)
    int4 = gpu.torchao_config(cl.Int4WeightOnlyCUDA(group_size=64))
    assert isinstance(int4, Int4WeightOnlyConfig) and int4.group_size == 64
    assert int4.int4_packing_format.value == "tile_packed_to_4d"  # torch's own tinygemm kernel, no extra package


def test_convert_plumbing_on_cpu_with_torchao_int8():
    """torchao's int8 tensor also runs on CPU: the conversion path without the device check."""
    m = _mlp(out=10)
    before = _state(m)
    q = gpu.convert(m, cl.Int8DynamicCUDA(), ["0", "2"])
    assert type(q[0].weight).__name__ == "Int8Tensor" and type(q[2].weight).__name__ == "Int8Tensor"
    assert type(q[4].weight) is nn.Parameter and type(q[4].weight.data) is torch.Tensor  # not in the plan: as it was
    x = torch.randn(32, 256)
    assert _cosine(q(x), m(x)) > 0.999
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert q.compresslib_kind == "torch_gpu" and q.compresslib_recipe == {"config": {"type": "Int8DynamicCUDA", "version": 1},
                                                                          "layers": ["0", "2"]}


def test_gpu_models_are_not_saved(tmp_path):
    q = gpu.convert(_mlp(), cl.Int8DynamicCUDA(), ["0"])
    with pytest.raises(TypeError, match=r"cannot save a Int8DynamicCUDA model: its weights are GPU kernel tensors.*"
                                        r"cl\.quantize\(cl\.load\(path\)\.to\('cuda'\), cl\.Int8DynamicCUDA\(\.\.\.\)\)"):
        cl.save(q, str(tmp_path / "q.clz"))
    assert not (tmp_path / "q.clz").exists()


# --------------------------------------------------------------------------- CUDA: the real kernels

_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")


@_CUDA
@pytest.mark.parametrize("config,least", [(cl.Float8Dynamic(), 0.99), (cl.Float8Dynamic(granularity="tensor"), 0.99),
                                          (cl.Int8DynamicCUDA(), 0.99), (cl.Int4WeightOnlyCUDA(), 0.98)], ids=IDS[:4])
def test_cuda_quantized_agrees_and_stays_on_the_gpu(config, least, tmp_path):
    if isinstance(config, cl.Float8Dynamic) and _capability() < (8, 9):
        pytest.skip("this GPU has no FP8 (the refusal is tested on CPU)")
    m = _mlp(width=512, out=128, dtype=torch.bfloat16, device="cuda")
    before = _state(m)
    x = torch.randn(64, 512, device="cuda", dtype=torch.bfloat16)
    q = cl.quantize(m, config)
    with torch.inference_mode():
        y, ref = q(x), m(x)
    assert y.device.type == "cuda" and y.dtype == torch.bfloat16 and y.shape == ref.shape
    assert _cosine(y, ref) >= least
    kinds = {type(q[i].weight).__name__ for i in (0, 2, 4)}
    assert kinds and all(k not in ("Tensor", "Parameter") for k in kinds), kinds
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(TypeError, match="cannot save"):
        cl.save(q, str(tmp_path / "q.clz"))


@_CUDA
def test_cuda_fp8_row_refuses_float32_before_any_work():
    if _capability() < (8, 9):
        pytest.skip("this GPU has no FP8")
    with pytest.raises(ValueError, match=r"model: Float8Dynamic\(granularity='row'\) takes Linear weights in bfloat16"):
        cl.quantize(_mlp(device="cuda"), cl.Float8Dynamic())


@_CUDA
def test_cuda_sparse24_is_exact_on_a_pruned_model():
    if _capability() < (8, 0):
        pytest.skip("2:4 sparse kernels need sm 8.0+")
    m = _mlp(width=512, out=128, dtype=torch.bfloat16, device="cuda")
    pruned = cl.prune(m, cl.NM(2, 4))
    x = torch.randn(64, 512, device="cuda", dtype=torch.bfloat16)
    s = cl.quantize(pruned, cl.Sparse24())
    assert all(type(s[i].weight).__name__.startswith("SparseSemiStructuredTensor") for i in (0, 2, 4))
    with torch.inference_mode():
        y, ref = s(x), pruned(x)
    assert y.device.type == "cuda" and _cosine(y, ref) > 0.999
    with pytest.raises(ValueError, match="not 2:4 sparse"):
        cl.quantize(m, cl.Sparse24())  # an unpruned model: refused, naming the fix


@_CUDA
def test_cuda_skipped_layers_are_named_in_one_warning():
    m = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).to("cuda", torch.bfloat16)
    with pytest.warns(UserWarning, match=r"Linear layers left as they are: 2 \(sides 10×256 not multiples of 8\)"):
        q = cl.quantize(m, cl.Int8DynamicCUDA())
    assert type(q[2].weight) is nn.Parameter

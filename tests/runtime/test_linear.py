"""Sparse24Linear: construction, every backend against the dense-with-zeros layer, dispatch and fallbacks."""

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from polysparse.kernels.sparse24 import decompress_24_reference, prune_and_compress_24_reference
from polysparse.runtime.linear import (
    DispatchTable,
    Sparse24Linear,
    backend_runs,
    reset_backend_runs,
    select_backend,
)


def weight_24(out_f, in_f, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(out_f, in_f, generator=g)
    return decompress_24_reference(*prune_and_compress_24_reference(dense)).to(dtype)


@pytest.fixture(autouse=True)
def fresh_counts():
    reset_backend_runs()
    yield
    reset_backend_runs()


def ran():
    return {r["ran"] for r in backend_runs()}


def test_from_dense_refuses_a_weight_that_is_not_24():
    weight = weight_24(8, 16)
    weight[3, 4:8] = torch.tensor([1.0, 2.0, 3.0, 0.0])
    with pytest.raises(ValueError, match="row 3, columns 4..7"):
        Sparse24Linear.from_dense(weight)


def test_buffers_and_state_dict_hold_the_compressed_weight():
    weight = weight_24(32, 64, torch.float16)
    layer = Sparse24Linear.from_dense(weight, torch.randn(32, dtype=torch.float16))
    assert set(layer.state_dict()) == {"values", "meta", "bias"}
    assert layer.values.shape == (32, 32) and layer.meta.shape == (32, 4) and layer.meta.dtype == torch.int16
    assert layer.compressed_nbytes() == 32 * 32 * 2 + 32 * 4 * 2 + 32 * 2
    assert torch.equal(layer.dense_weight(), weight)
    assert not list(layer.parameters())[0].requires_grad


@pytest.mark.parametrize("bias", [False, True])
def test_dense_backend_matches_the_dense_layer(bias):
    weight = weight_24(48, 64)
    b = torch.randn(48) if bias else None
    layer = Sparse24Linear.from_dense(weight, b, backend="dense")
    x = torch.randn(2, 5, 64)
    torch.testing.assert_close(layer(x), F.linear(x, weight, b))
    assert ran() == {"dense"}
    assert all(r["fallback_reason"] is None for r in backend_runs())


def test_dense_weight_is_cached_on_cpu_unless_disabled():
    weight = weight_24(16, 32)
    cached = Sparse24Linear.from_dense(weight, backend="dense")
    uncached = Sparse24Linear.from_dense(weight, backend="dense", cache_dense=False)
    x = torch.randn(3, 32)
    cached(x), uncached(x)
    assert cached._dense is not None and uncached._dense is None
    cached.to(torch.float64)  # moving or casting invalidates every derived copy
    assert cached._dense is None and cached.values.dtype == torch.float64 and cached.meta.dtype == torch.int16
    torch.testing.assert_close(cached(x.double()), F.linear(x.double(), weight.double()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 5, 17])
def test_triton_backend_through_the_interpreter(dtype, m):
    weight = weight_24(64, 128, dtype, seed=m)
    bias = torch.randn(64, dtype=dtype)
    layer = Sparse24Linear.from_dense(weight, bias, backend="triton")
    x = torch.randn(m, 128, dtype=dtype)
    expected = F.linear(x.float(), weight.float(), bias.float())
    torch.testing.assert_close(layer(x).float(), expected, atol=2e-2, rtol=2e-2)
    assert ran() == {"triton"}


def test_triton_on_an_unsupported_shape_falls_back_loudly_once(caplog):
    weight = weight_24(32, 64, torch.float16)  # out_features 32 is not a multiple of 64
    layer = Sparse24Linear.from_dense(weight, backend="triton")
    x = torch.randn(2, 64, dtype=torch.float16)
    with caplog.at_level(logging.WARNING, logger="polysparse.runtime"):
        for _ in range(3):
            torch.testing.assert_close(layer(x), F.linear(x, weight))
    assert sum("running dense" in r.getMessage() for r in caplog.records) == 1
    (run,) = backend_runs()
    assert run["requested"] == "triton" and run["ran"] == "dense" and run["calls"] == 3
    assert "multiples of 64" in run["fallback_reason"]


def test_torch_backend_on_cpu_falls_back_with_the_reason():
    layer = Sparse24Linear.from_dense(weight_24(64, 64, torch.float16), backend="torch")
    layer(torch.randn(1, 64, dtype=torch.float16))
    (run,) = backend_runs()
    assert run["ran"] == "dense" and "CUDA" in run["fallback_reason"]


def test_fp32_cannot_use_the_sparse_kernels():
    layer = Sparse24Linear.from_dense(weight_24(64, 64), backend="triton")
    layer(torch.randn(1, 64))
    assert "fp16/bf16" in backend_runs()[0]["fallback_reason"]


def test_auto_is_dense_on_cpu_without_a_fallback():
    layer = Sparse24Linear.from_dense(weight_24(64, 64, torch.float16))
    layer(torch.randn(1, 64, dtype=torch.float16))
    assert backend_runs() == [{"requested": "auto", "ran": "dense", "fallback_reason": None, "calls": 1}]


def test_auto_on_cuda_follows_the_default_rule(monkeypatch):
    # Pure selection: no CUDA tensor is needed, only the device and the rule.
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    cuda = torch.device("cuda")
    common = dict(dtype=torch.float16, device=cuda, out_features=4096, in_features=4096)
    assert select_backend("auto", m=1, **common) == ("triton", None)
    assert select_backend("auto", m=64, **common) == ("triton", None)
    assert select_backend("auto", m=65, **common) == ("dense", None)
    backend, reason = select_backend("auto", m=1, **{**common, "out_features": 100})
    assert backend == "dense" and "multiples of 64" in reason
    backend, reason = select_backend("auto", m=1, **{**common, "dtype": torch.float32})
    assert backend == "dense" and "fp16/bf16" in reason


def test_dispatch_table_nearest_bucket_and_default_for_unmeasured_shapes():
    table = DispatchTable(
        entries=((640, 2048, 0, "triton"), (640, 2048, 4, "triton"), (640, 2048, 11, "torch"))
    )
    assert table.choose(1, 2048, 640) == "triton"
    assert table.choose(16, 2048, 640) == "triton"
    assert table.choose(2048, 2048, 640) == "torch"
    assert table.choose(300, 2048, 640) == "torch"  # bucket 9 is nearer the measured 11 than 4
    assert table.choose(40, 2048, 640) == "triton"  # bucket 6: nearer 4
    assert table.choose(4096, 1024, 1024) == "dense"  # not measured: the rule
    assert table.choose(8, 1024, 1024) == "triton"
    with pytest.raises(ValueError):
        DispatchTable(entries=((1, 2, 3, "cublas"),))


def test_dispatch_table_from_the_kernel_benchmark_file(tmp_path):
    rows = [
        {"in_features": 64, "out_features": 128, "m_bucket": 0, "m": [1], "best": "triton", "ms": {}},
        {"in_features": 64, "out_features": 128, "m_bucket": 12, "m": [4096], "best": "torch-cusparselt"},
        {"in_features": 64, "out_features": 128, "m_bucket": 8, "m": [256], "best": "dense"},
        {"in_features": 64, "out_features": 128, "m_bucket": 6, "m": [64], "best": "someone-else"},
    ]
    path = tmp_path / "sparse24_matmul.json"
    path.write_text(json.dumps({"environment": {"device": "NVIDIA H100"}, "dispatch_table": rows}))
    table = DispatchTable.from_json(path)
    assert table.entries == ((64, 128, 0, "triton"), (64, 128, 12, "torch"), (64, 128, 8, "dense"))
    assert "H100" in table.source
    path.write_text(json.dumps({"smoke": True, "dispatch_table": rows}))
    assert DispatchTable.load_default(path).entries == ()  # interpreter timings are no dispatch table
    assert DispatchTable.load_default(tmp_path / "missing.json") == DispatchTable()


def test_conv1d_layout_round_trips():
    conv = Conv1D(48, 64)  # weight is (in=64, out=48)
    with torch.no_grad():
        conv.weight.copy_(weight_24(48, 64).t())
    layer = Sparse24Linear.from_module(conv, backend="dense")
    x = torch.randn(3, 64)
    assert layer.layout == "conv1d" and (layer.out_features, layer.in_features) == (48, 64)
    torch.testing.assert_close(layer(x), conv(x))
    back = layer.to_dense_module()
    assert isinstance(back, Conv1D) and torch.equal(back.weight, conv.weight)


def test_to_dense_module_is_the_dense_with_zeros_linear():
    linear = nn.Linear(64, 32)
    with torch.no_grad():
        linear.weight.copy_(weight_24(32, 64))
    back = Sparse24Linear.from_module(linear).to_dense_module()
    assert isinstance(back, nn.Linear)
    assert torch.equal(back.weight, linear.weight) and torch.equal(back.bias, linear.bias)


def test_changing_the_backend_of_a_layer_takes_effect():
    layer = Sparse24Linear.from_dense(weight_24(64, 64, torch.float16), backend="dense")
    x = torch.randn(2, 64, dtype=torch.float16)
    layer(x)
    layer.backend = "triton"  # the per-M plan is decided again
    layer(x)
    assert [(r["ran"], r["calls"]) for r in backend_runs()] == [("dense", 1), ("triton", 1)]
    with pytest.raises(ValueError):
        layer.backend = "cuda"


def test_inputs_that_do_not_fit_are_refused():
    layer = Sparse24Linear.from_dense(weight_24(16, 32, torch.float16))
    with pytest.raises(ValueError, match="does not fit"):
        layer(torch.randn(2, 32))  # float32 into a float16 layer
    with pytest.raises(ValueError, match="does not fit"):
        layer(torch.randn(2, 16, dtype=torch.float16))

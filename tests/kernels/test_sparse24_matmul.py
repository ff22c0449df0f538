"""2:4 sparse linear: the Triton kernel (through the interpreter on CPU) against a float32 dense product,
split-K, fallbacks, validation, and the ``polysparse::sparse24_linear`` custom op."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers.sparse24_cases import DEVICE, TOL, expected, make_case
from polysparse.kernels import dispatch
from polysparse.kernels import sparse24 as s24
from polysparse.kernels import sparse24_gemv as gemv
from polysparse.kernels import sparse24_matmul as sm
from polysparse.kernels import sparse24_splitk as splitk


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(
    "batch,k,n",
    [((1,), 64, 64), ((3,), 128, 192), ((17,), 192, 64), ((2, 3), 64, 128), ((1, 1, 2), 128, 64)],
)
def test_triton_matches_dense(batch, k, n, dtype, bias):
    x, values, meta, b, dense = make_case(batch, k, n, dtype, bias)
    y = sm.sparse24_linear(x, values, meta, b, impl="triton")
    assert y.shape == (*batch, n) and y.dtype == dtype
    torch.testing.assert_close(y, expected(x, dense, b), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("split_k", [1, 2, 4])
def test_split_k_writes_every_output(dtype, split_k):
    # K = 192 is three 64-column tiles: split 2 gives uneven ranges, split 4 one empty range (zero partial).
    x, values, meta, b, dense = make_case((20,), 192, 128, dtype, bias=True)
    out = torch.full((20, 128), float("nan"), dtype=dtype, device=DEVICE)
    config = sm._config(16, 32, 64, 4, 1)
    sm._sparse24_linear_triton(x, values, meta, b, out, split_k=split_k, config=config)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[dtype])


@pytest.mark.parametrize(
    "config",
    [sm.SMALL_CONFIGS[0], sm.SMALL_CONFIGS[3], sm.PREFILL_CONFIGS[5]],
    ids=lambda c: "x".join(str(c.kwargs[key]) for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K")),
)
def test_gpu_tile_configs_in_interpreter(config):
    # The tile shapes tuned for the GPU, run through the interpreter: masks, grouping and expansion at size.
    x, values, meta, b, dense = make_case((20,), 192, 128, torch.float16, bias=True)
    out = torch.full((20, 128), float("nan"), dtype=torch.float16, device=DEVICE)
    sm._sparse24_linear_triton(x, values, meta, b, out, split_k=1, config=config)
    torch.testing.assert_close(out, expected(x, dense, b), **TOL[torch.float16])


def test_all_configs_align_with_metadata_words():
    for config in sm.SMALL_CONFIGS + sm.PREFILL_CONFIGS + sm._INTERPRETER:
        assert config.kwargs["BLOCK_K"] % 64 == 0  # whole int16 words per tile, and K % 64 == 0 shapes
        assert config.kwargs["BLOCK_M"] >= 16 and config.kwargs["BLOCK_N"] >= 16  # tl.dot minimum


def test_sm80_exclusions_name_real_configs():
    keys = {sm.config_key(c) for c in sm.SMALL_CONFIGS + sm.PREFILL_CONFIGS}
    assert sm.SPILLS_ON_SM80.issubset(keys)
    # Every regime keeps a configuration on an A100.
    for configs in (sm.SMALL_CONFIGS, sm.PREFILL_CONFIGS):
        assert {sm.config_key(c) for c in configs} - sm.SPILLS_ON_SM80


@pytest.mark.parametrize("m", [1, 4, 20])  # the GEMV, the tensor-core decode kernel, the tl.dot path
def test_kernel_reads_the_metadata(m):
    x, values, meta, _, dense = make_case((m,), 64, 64, torch.float16, bias=False)
    # Move every group to another valid position pair: a different weight from the same values.
    valid = torch.tensor([0b0100, 0b1000, 0b1100, 0b1001, 0b1101, 0b1110], device=DEVICE)
    nib = s24.unpack_nibbles(meta, 16)
    index = (nib.unsqueeze(-1) == valid).int().argmax(-1)
    moved = s24.pack_nibbles(valid[(index + 1) % len(valid)])
    y = sm.sparse24_linear(x, values, moved, impl="triton")
    assert not torch.allclose(y.float(), expected(x, dense, None).float(), atol=0.1)
    torch.testing.assert_close(
        y, expected(x, s24.decompress_24_reference(values, moved), None), **TOL[torch.float16]
    )


# ----------------------------------------------------------------------------------------------------------
# Decode GEMV (M <= GEMV_MAX_M); the tensor-core decode kernel has its own tests
# ----------------------------------------------------------------------------------------------------------


def test_dispatch_by_batch_size(monkeypatch):
    # M <= GEMV_MAX_M: the GEMV; up to DECODE_MAX_M: the tensor-core decode kernel; beyond: tl.dot.
    calls = []
    for module, name in ((gemv, "sparse24_gemv_triton"), (sm, "_sparse24_decode_triton"),
                         (sm, "_sparse24_linear_triton")):  # fmt: skip
        original = getattr(module, name)
        monkeypatch.setattr(
            module,
            name,
            lambda *a, _n=name, _f=original, **kw: calls.append((_n, a[0].shape[0])) or _f(*a, **kw),
        )
    rows = [1, 2, 3, 16, 17]
    for m in rows:
        x, values, meta, b, dense = make_case((m,), 128, 64, torch.float16, bias=True)
        torch.testing.assert_close(
            sm.sparse24_linear(x, values, meta, b, impl="triton"), expected(x, dense, b), **TOL[torch.float16]
        )
    assert sm.GEMV_MAX_M == 1 and sm.DECODE_MAX_M == 16
    assert calls == [
        ("sparse24_gemv_triton", 1),
        ("_sparse24_decode_triton", 2),
        ("_sparse24_decode_triton", 3),
        ("_sparse24_decode_triton", 16),
        ("_sparse24_linear_triton", 17),
    ]


def test_non_contiguous_input():
    x, values, meta, b, dense = make_case((64,), 64, 64, torch.float16, bias=True)
    xt = x.t().contiguous().t()  # same values, column-major strides
    assert not xt.is_contiguous()
    torch.testing.assert_close(sm.sparse24_linear(xt, values, meta, b, impl="triton"), expected(x, dense, b))


@pytest.mark.parametrize("m", [1, 20])  # the GEMV and the tl.dot path
def test_aligned_meta_view(m):
    # K = 960: 60 words per row, not a multiple of 8 (16 bytes); the kernels realign such rows themselves.
    x, values, meta, b, dense = make_case((m,), 960, 64, torch.float16, bias=True)
    assert meta.stride(0) == 60 and not s24.is_aligned_meta(meta)
    aligned = s24.aligned_meta(meta)
    assert aligned.stride(0) == 64 and torch.equal(aligned, meta) and s24.is_aligned_meta(aligned)
    assert s24.aligned_meta(aligned) is aligned
    for layout in (meta, aligned, meta.t().contiguous().t()):
        y = sm.sparse24_linear(x, values, layout, b, impl="triton")
        torch.testing.assert_close(y, expected(x, dense, b), **TOL[torch.float16])


def test_empty_batch():
    x, values, meta, b, _ = make_case((0,), 64, 64, torch.float16, bias=True)
    assert sm.sparse24_linear(x, values, meta, b).shape == (0, 64)


@pytest.mark.parametrize("k,n", [(100, 64), (64, 96), (32, 64)])
def test_unaligned_shapes_fall_back_to_reference(k, n):
    x, values, meta, b, dense = make_case((3,), k, n, torch.float16, bias=True)
    reason = f"in_features={k} and out_features={n} must be multiples of 64"
    before = dispatch.fallback_counts[(sm.OP_NAME, reason)]
    y = sm.sparse24_linear(x, values, meta, b)
    assert dispatch.fallback_counts[(sm.OP_NAME, reason)] == before + 1
    torch.testing.assert_close(y, sm.sparse24_linear_reference(x, values, meta, b))
    with pytest.raises(RuntimeError, match="must be multiples of 64"):
        sm.sparse24_linear(x, values, meta, b, impl="triton")


def test_float32_falls_back_to_reference():
    x, values, meta, b, dense = make_case((2,), 64, 64, torch.float32, bias=False)
    y = sm.sparse24_linear(x, values, meta)
    torch.testing.assert_close(y, F.linear(x, dense))
    with pytest.raises(RuntimeError, match="dtype torch.float32"):
        sm.sparse24_linear(x, values, meta, impl="triton")


def test_reference_matches_dense():
    x, values, meta, b, dense = make_case((5,), 64, 128, torch.float32, bias=True)
    torch.testing.assert_close(
        sm.sparse24_linear(x, values, meta, b, impl="reference"), F.linear(x, dense, b)
    )


def test_validation_errors():
    x, values, meta, b, _ = make_case((2,), 64, 64, torch.float16, bias=True)
    with pytest.raises(ValueError, match="in_features=64"):
        sm.sparse24_linear(x[:, :32], values, meta)
    with pytest.raises(ValueError, match="values are torch.float16"):
        sm.sparse24_linear(x.bfloat16(), values, meta)
    with pytest.raises(ValueError, match="bias must be"):
        sm.sparse24_linear(x, values, meta, b[:8])
    with pytest.raises(ValueError, match="meta has shape"):
        sm.sparse24_linear(x, values, meta[:, :2])
    with pytest.raises(ValueError, match="impl must be"):
        sm.sparse24_linear(x, values, meta, impl="fast")


def test_m_bucket_and_split_heuristic(monkeypatch):
    assert [sm.m_bucket(m) for m in (1, 2, 3, 4, 9, 16, 17, 2048, 4096)] == [0, 1, 2, 2, 4, 4, 5, 11, 12]
    cpu = torch.device("cpu")
    monkeypatch.setattr(splitk, "num_sms", lambda device: 132)
    assert sm.default_split_k(1, 4096, 4096, cpu) == 4  # 32 tiles of 128 features -> 128 programs
    assert sm.default_split_k(16, 1024, 4096, cpu) == 8  # 8 tiles; 512 columns per split at most 8
    assert sm.default_split_k(1, 14336, 4096, cpu) == 1  # 112 tiles already fill the GPU
    assert sm.default_split_k(256, 1024, 4096, cpu) == 1  # prefill never splits
    assert sm.default_split_k(1, 256, 640, cpu) == 1  # too short a K to split


def test_custom_op_opcheck():
    x, values, meta, b, _ = make_case((2, 3), 64, 64, torch.float16, bias=True)
    torch.library.opcheck(torch.ops.polysparse.sparse24_linear.default, (x, values, meta, b, "auto"))


def test_torch_compile_traces_the_op():
    x, values, meta, b, dense = make_case((3,), 64, 128, torch.float16, bias=True)

    def layer(inp):
        return sm.sparse24_linear(inp, values, meta, b) * 2

    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------
# GPU (run with POLYSPARSE_TEST_GPU=1 so that the kernels are compiled, not interpreted)
# ----------------------------------------------------------------------------------------------------------


def _need_compiled_kernels():
    if dispatch.interpreter_enabled():
        pytest.skip("set POLYSPARSE_TEST_GPU=1 to compile the kernels instead of interpreting them")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 2, 3, 16, 64, 300, 2048])  # 1: the GEMV, 2-16: the decode kernel
@pytest.mark.parametrize("k,n", [(4096, 1024), (640, 2048), (2048, 640)])
def test_compiled_kernel_gpu(m, k, n, dtype):
    _need_compiled_kernels()
    x, values, meta, b, dense = make_case((m,), k, n, dtype, bias=True)
    y = sm.sparse24_linear(x, values, meta, b, impl="triton")
    torch.testing.assert_close(y, expected(x, dense, b), **TOL[dtype])


@pytest.mark.gpu
def test_cuda_graph_and_inductor_gpu():
    _need_compiled_kernels()
    x, values, meta, b, dense = make_case((4,), 4096, 4096, torch.float16, bias=True)
    eager = sm.sparse24_linear(x, values, meta, b, impl="triton")  # warm-up: autotuning happens here
    graph = torch.cuda.CUDAGraph()
    static_x = x.clone()
    with torch.cuda.graph(graph):
        static_y = sm.sparse24_linear(static_x, values, meta, b, impl="triton")
    static_x.copy_(x)
    graph.replay()
    torch.testing.assert_close(static_y, eager, rtol=0, atol=0)
    compiled = torch.compile(lambda inp: sm.sparse24_linear(inp, values, meta, b), fullgraph=True)
    torch.testing.assert_close(compiled(x), eager, rtol=0, atol=0)

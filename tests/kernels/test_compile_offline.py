"""The kernels compile for an H100 (sm_90) without one: a check the interpreter cannot make.

The interpreter runs the kernels as NumPy code, which accepts things the compiler rejects (and never
allocates registers). This test compiles each kernel to a CUDA binary in a subprocess with
``TRITON_INTERPRET=0``: Triton's NVIDIA backend and its bundled ``ptxas`` need no GPU or driver for that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from polysparse.kernels import sparsegpt as sg
    from polysparse.kernels import topk_mask as tm

    def build(fn, types, constexprs, num_warps, **options):
        names = [n for n in fn.arg_names if n not in constexprs]
        signature = dict(zip(names, types, strict=True)) | {n: "constexpr" for n in constexprs}
        src = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
        kernel = triton.compile(
            src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps, **options}
        )
        assert kernel.asm["cubin"], fn.__name__
        return kernel

    mask_args = ["*fp16", "*fp32", "*u8"] + ["i32"] * 8
    for one_tile, block_n in ((True, 4096), (False, 4096)):
        flags = {"HAS_SCALE": True, "ZERO_PRUNED": True, "ONE_TILE": one_tile}
        build(tm._unstructured_mask_kernel, mask_args, flags | {"BLOCK_M": 1, "BLOCK_N": block_n}, 8)
    build(
        tm._nm_mask_kernel, ["*bf16", "*fp32", "*u8"] + ["i32"] * 7,
        {"N": 2, "M": 4, "M_PAD": 4, "HAS_SCALE": True, "ZERO_PRUNED": True, "BLOCK_M": 4, "BLOCK_G": 256}, 8,
    )
    for nm, n, step in ((True, 2, 4), (False, 0, 1)):
        kernel = build(
            sg._sparsegpt_block_kernel, ["*fp32", "*fp32", "*u8", "*fp32", "*u8"] + ["i32"] * 13,
            {"NM": nm, "NM_N": n, "STEP": step, "BLOCK_M": 8, "BLOCK_C": 128}, 4, **sg.COMPILE_OPTIONS,
        )
        # The reference rounds products and differences separately: no fused multiply-add in the solve.
        assert "fma.rn.f32" not in kernel.asm["ptx"], "SparseGPT block kernel fused a multiply-add"
    print("compiled")
    """
)


def _nvidia_backend_available() -> bool:
    try:
        from triton.backends import backends

        return "nvidia" in backends
    except ImportError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _nvidia_backend_available(), reason="Triton's NVIDIA backend is not installed")
def test_kernels_compile_for_sm90(tmp_path):
    # A fresh cache: compile for real, not from an earlier run's binaries.
    env = os.environ | {"TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-P", "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0 and "compiled" in out.stdout, out.stderr[-4000:]

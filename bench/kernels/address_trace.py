"""Address traces of Triton kernels' global loads, recorded by Triton's CPU interpreter.

    python -P -m polysparse.bench.kernels.address_trace SPEC.json OUT.pkl

The interpreter runs a kernel's Python body once per program with numpy arrays; every ``tl.load`` passes
the whole block's pointers (addresses) and mask. :func:`trace` records them for one program, keyed by the
source line of the ``tl.load`` in the kernel's file, together with where each tensor argument lies, so that
:mod:`polysparse.bench.kernels.memory_model` can lay them over the compiled layout (which lane holds which
element) and count the sectors and lines each warp-level request touches. Gathers through tables depend on
the data, so the operands are real: random 2:4 weights compressed by the project's own compressor.

The interpreter must be switched on before Triton decorates the kernels (``TRITON_INTERPRET=1`` at import),
and a compile for a GPU target must not be, so traces run in their own process (:func:`run`).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polysparse.sparsify.strict_json import write_json


def trace(launch: Callable[[], object], files: set[str], program: tuple[int, int, int] = (0, 0, 0)):
    """Run ``launch()`` under the interpreter and return ``{kernel name: {"loads": {line: [record]},
    "args": {name: (start, bytes)}}}`` for ``program``; a record holds ``addresses``, ``mask`` (arrays of
    the load's shape) and ``element_bytes``. ``files``: the kernel source files whose lines key the loads."""
    import inspect

    import numpy as np
    from triton.runtime import interpreter

    found: dict[str, dict[str, Any]] = {}
    current: list[str] = []
    builder_cls = interpreter.InterpreterBuilder
    original_load = builder_cls.create_masked_load
    original_call = interpreter.GridExecutor.__call__

    def load(self, ptrs, mask, other, *rest, **kw):
        if current and tuple(self.grid_idx) == program:
            frame = inspect.currentframe()
            while frame is not None and frame.f_code.co_filename not in files:
                frame = frame.f_back
            if frame is not None:
                element = ptrs.get_element_ty()
                record = {
                    "addresses": np.asarray(ptrs.data, dtype=np.uint64).astype(np.int64).copy(),
                    "mask": np.broadcast_to(np.asarray(mask.data, dtype=bool), ptrs.data.shape).copy(),
                    "element_bytes": element.primitive_bitwidth // 8,
                }
                found[current[-1]]["loads"].setdefault(frame.f_lineno, []).append(record)
        return original_load(self, ptrs, mask, other, *rest, **kw)

    def call(self, *args, **kwargs):
        name = self.fn.__name__
        ranges = {}
        for arg_name, value in zip(self.arg_names, args, strict=False):
            if hasattr(value, "data_ptr"):
                ranges[arg_name] = (value.data_ptr(), value.untyped_storage().nbytes())
        for arg_name, value in kwargs.items():
            if hasattr(value, "data_ptr"):
                ranges[arg_name] = (value.data_ptr(), value.untyped_storage().nbytes())
        found.setdefault(name, {"loads": {}, "args": ranges})
        current.append(name)
        try:
            return original_call(self, *args, **kwargs)
        finally:
            current.pop()

    builder_cls.create_masked_load = load
    interpreter.GridExecutor.__call__ = call
    try:
        launch()
    finally:
        builder_cls.create_masked_load = original_load
        interpreter.GridExecutor.__call__ = original_call
    return found


# ----------------------------------------------------------------------------------------------------------
# The project's decode kernels on real operands
# ----------------------------------------------------------------------------------------------------------

TRACE_K = 2048  # columns of the traced weight: rows of >= 128-byte metadata, as in real layers (K >= 1024)


def _operands(n: int, k: int, dtype: str, seed: int = 0):
    import torch

    from polysparse.kernels.sparse24 import prune_and_compress_24_reference

    torch.manual_seed(seed)
    cast = torch.float16 if dtype == "fp16" else torch.bfloat16
    weight = torch.randn(n, k).to(cast)
    values, meta = prune_and_compress_24_reference(weight)
    return values, meta, cast


def decode_launch(spec: dict[str, Any]) -> Callable[[], object]:
    """A zero-argument launch of a decode kernel for a compiled-launch spec (``family``, ``constexprs``,
    ``num_warps``, ``num_stages``): ``TRACE_K`` columns (64 fewer, and 32 rows fewer than two row tiles, for
    the masked variants), so that program 0 runs full main-loop tiles."""
    import torch
    import triton

    c = spec["constexprs"]
    split = c["SPLIT_K"]
    block_n = c["BLOCK_N"]
    even = c.get("EVEN_N", True) and c.get("EVEN_K", True)
    n = 2 * block_n - (0 if even else 32)  # masked: the second row tile partly past N
    k = TRACE_K - (0 if even else 64)
    values, meta, cast = _operands(n, k, "bf16" if c["BF16"] else "fp16")
    config = triton.Config(
        {key: c[key] for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K") if key in c},
        num_warps=spec["num_warps"],
        num_stages=spec["num_stages"],
    )
    if spec["family"].endswith("/gemv"):
        from polysparse.kernels.sparse24_gemv import sparse24_gemv_triton

        x = torch.randn(1, k).to(cast)
        out = torch.empty(1, n, dtype=cast)
        return lambda: sparse24_gemv_triton(x, values, meta, None, out, split_k=split, config=config)
    if spec["family"].endswith("/decode_mma"):
        from polysparse.kernels.sparse24_decode_mma import sparse24_decode_mma_launch

        # The largest decode batch: x's bytes grow with M, rows past M are masked off (no access).
        x = torch.randn(16, k).to(cast)
        target = (
            torch.empty(split, 16, n, dtype=torch.float32) if split > 1 else torch.empty(16, n, dtype=cast)
        )
        return lambda: sparse24_decode_mma_launch(x, values, meta, None, target, split, config=config)
    raise ValueError(f"no trace set-up for {spec['family']}")


def _kernel_files() -> set[str]:
    from polysparse.kernels import sparse24_decode_mma, sparse24_gemv

    return {sparse24_gemv.__file__, sparse24_decode_mma.__file__}


def import_file(path: str):
    """The module of a Python file given by its path (kernels outside the package: the tests' own)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    os.environ["TRITON_INTERPRET"] = "1"
    specs = json.loads(Path(argv[0]).read_text())
    traces = {}
    for key, spec in specs.items():
        if "setup" in spec:  # "path/to/file.py:function": a zero-argument launch of that file's kernels
            path, name = spec["setup"].rsplit(":", 1)
            module = import_file(path)
            traces[key] = trace(getattr(module, name), {str(Path(path).resolve()), module.__file__})
        else:
            traces[key] = trace(decode_launch(spec), _kernel_files())
    Path(argv[1]).write_bytes(pickle.dumps(traces))
    return 0


def run(specs: dict[str, dict[str, Any]], timeout: float = 1800) -> dict[str, Any]:
    """Trace every spec (``{key: spec}``: a compiled launch's ``family``, ``constexprs``, ``num_warps``,
    ``num_stages``, or ``{"setup": "file.py:function"}``) in a child process with the interpreter on;
    ``{key: {kernel name: trace}}``."""
    with tempfile.TemporaryDirectory(prefix="polysparse-trace-") as folder:
        spec_path, out_path = Path(folder) / "specs.json", Path(folder) / "traces.pkl"
        write_json(spec_path, specs)
        env = dict(os.environ, TRITON_INTERPRET="1")
        command = [sys.executable, "-P", "-m", "polysparse.bench.kernels.address_trace"]
        proc = subprocess.run(
            [*command, str(spec_path), str(out_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if proc.returncode or not out_path.exists():
            raise RuntimeError(f"address trace failed ({proc.returncode}): {proc.stderr[-3000:]}")
        return pickle.loads(out_path.read_bytes())


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

"""Kernel benchmarks: providers side by side on real model shapes.

Run one as ``python -P -m polysparse.bench.kernels.<op> [--out DIR] [--smoke]``.
"""

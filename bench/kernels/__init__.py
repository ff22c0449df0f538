"""Kernel benchmarks: providers side by side on real model shapes (``python -m polysparse.bench.kernels.<op>``)."""

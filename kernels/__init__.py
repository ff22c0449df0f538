"""polysparse.kernels."""

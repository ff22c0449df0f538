"""polysparse.sparsify."""

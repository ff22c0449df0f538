"""polysparse.bench."""

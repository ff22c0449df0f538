"""polysparse.runtime."""

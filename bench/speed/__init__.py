"""Throughput: ``polysparse bench`` (dense and sparse twins timed side by side), the random-weight models at
real layer shapes it runs on a GPU, and the one-screen summary of a GPU run."""

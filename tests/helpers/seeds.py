"""Seeds derived from test parameters, the same in every process.

``hash()`` of a string changes from one Python process to the next (PYTHONHASHSEED), so seeds built from
it made parametrised tests draw different inputs on every run and fail now and then, unreproducibly: the
SparseGPT-vs-oracle test drew one input in a thousand where our error sits 1.7% above the oracle's.
"""

import zlib


def stable_seed(*parts, modulo: int = 2**31) -> int:
    return zlib.crc32(repr(parts).encode()) % modulo

"""The safetensors header reader: a header that is unreadable or does not fit the data is corrupt."""

import json
import struct

import pytest

from helpers.checkpoint_files import WEIGHTS, copy_folder
from polysparse.runtime.checkpoint import CorruptCheckpointError, load_sparse


def test_flipped_bytes_in_the_header(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + length]
    header[header.index(b"{") + 1 : header.index(b"{") + 4] = b"\xff\xfe\x00"
    data[8 : 8 + length] = header
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        load_sparse(folder)
    with pytest.raises(CorruptCheckpointError, match="unreadable safetensors header"):
        load_sparse(folder, verify=False)  # the header is checked even without hashing


def test_header_shape_that_does_not_fit_the_data(saved_sparse, tmp_path):
    folder = copy_folder(saved_sparse("llama"), tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["model.layers.0.mlp.up_proj.values"]["shape"] = [128, 16]
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    data[8 : 8 + length] = raw
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="spans"):
        load_sparse(folder, verify=False)

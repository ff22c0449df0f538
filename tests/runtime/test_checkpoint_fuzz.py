"""Fuzzing saved checkpoints: random truncation or corruption must raise, never load garbage."""

import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polysparse.runtime.checkpoint import CheckpointError, load_sparse
from polysparse.runtime.swap import sparse_layers

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


def weights_file(folder):
    return next(folder.glob("*.safetensors"))


def state_of(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


_EXPECTED: dict = {}


@pytest.fixture(scope="module")
def original(saved_sparse):
    """The checkpoint folder (the state it must load as is kept aside: hypothesis prints arguments)."""
    folder = saved_sparse("llama")
    _EXPECTED[folder] = state_of(load_sparse(folder))
    return folder


def copied(folder, tmp_path_factory, name):
    """A copy of the checkpoint ``folder`` to damage, and its weights file."""
    copy = tmp_path_factory.mktemp(name) / "ckpt"
    shutil.copytree(folder, copy)
    return copy, weights_file(copy)


@FUZZ
@given(data=st.data())
def test_truncated_weights_never_load(original, tmp_path_factory, data):
    copy, path = copied(original, tmp_path_factory, "trunc")
    raw = path.read_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="keep bytes")
    path.write_bytes(raw[:cut])
    with pytest.raises(CheckpointError):
        load_sparse(copy)


@FUZZ
@given(data=st.data())
def test_corrupted_weights_never_load(original, tmp_path_factory, data):
    copy, path = copied(original, tmp_path_factory, "flip")
    raw = bytearray(path.read_bytes())
    positions = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=4, unique=True))
    for position in positions:
        raw[position] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError):
        load_sparse(copy)


@FUZZ
@given(data=st.data())
def test_corrupted_config_raises_or_loads_the_same_weights(original, tmp_path_factory, data):
    """A byte changed in config.json either makes loading fail or leaves the weights exactly as saved
    (a changed field that does not matter, such as a version string)."""
    folder, expected = original, _EXPECTED[original]
    copy = tmp_path_factory.mktemp("cfg") / "ckpt"
    shutil.copytree(folder, copy)
    path = copy / "config.json"
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    raw[position] = data.draw(st.integers(32, 126).filter(lambda b: b != raw[position]), label="byte")
    path.write_bytes(bytes(raw))
    try:
        model = load_sparse(copy)
    except CheckpointError:  # a clear error (corrupt, mismatched, not a checkpoint), nothing else
        return
    got = state_of(model)
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    assert sparse_layers(model)


def test_config_transformers_cannot_build_is_a_checkpoint_error(original, tmp_path):
    """Found by the fuzzer above: a corrupted rope_type made transformers raise a bare KeyError."""
    copy = tmp_path / "ckpt"
    shutil.copytree(original, copy)
    path = copy / "config.json"
    text = path.read_text()
    assert '"rope_type": "default"' in text
    path.write_text(text.replace('"rope_type": "default"', '"rope_type": " efault"'))
    with pytest.raises(CheckpointError, match="cannot build"):
        load_sparse(copy)

"""Issue 26, item 5 and the loader's messages: a checkpoint whose config ties the output embedding to the
input one, but whose files store a different head, is refused rather than loaded with the head dropped."""

import json

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model, token_ids
from helpers.tiny_models import tiny_tokenizer
from polysparse.bench.cli import main
from polysparse.runtime.checkpoint import (
    CheckpointMismatchError,
    export,
    is_sparse_checkpoint,
    load_sparse,
    save_sparse,
)
from polysparse.runtime.swap import sparsify_model


def saved(folder, tie):
    model = sparse_tiny_model("llama", dtype=torch.float32, tie_word_embeddings=tie)
    if not tie:
        with torch.no_grad():  # a head of its own, clearly not the embedding
            model.lm_head.weight.copy_(torch.randn_like(model.lm_head.weight))
    sparsify_model(model)
    save_sparse(model, folder, tokenizer=tiny_tokenizer())
    return model


def claim_tied(folder):
    config = json.loads((folder / "config.json").read_text())
    config["tie_word_embeddings"] = True
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("format", ["compressed", "dense", "compressed-tensors"])
def test_a_stored_head_with_tie_word_embeddings_true_is_refused(tmp_path, format):
    native = tmp_path / "native"
    saved(native, tie=False)
    folder = native if format == "compressed" else export(native, tmp_path / format, format)
    claim_tied(folder)
    with pytest.raises(CheckpointMismatchError, match="tie_word_embeddings: true.*lm_head.weight"):
        load_sparse(folder)


def test_the_refusal_reaches_the_command_line(tmp_path, capsys):
    folder = tmp_path / "native"
    saved(folder, tie=False)
    claim_tied(folder)
    assert main(["export", str(folder), "--format", "dense", "--out", str(tmp_path / "dense")]) == 2
    err = capsys.readouterr().err
    assert "tie_word_embeddings" in err and "Traceback" not in err
    assert not (tmp_path / "dense").exists()


def test_a_tied_checkpoint_still_loads_identically(tmp_path):
    folder = tmp_path / "tied"
    model = saved(folder, tie=True)
    loaded = load_sparse(folder)
    ids = token_ids()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight


def test_an_unknown_format_version_is_a_sparse_checkpoint_this_version_cannot_read(tmp_path):
    folder = tmp_path / "native"
    saved(folder, tie=False)
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    assert is_sparse_checkpoint(folder)  # not mistaken for a dense folder
    with pytest.raises(Exception, match="format version 99"):
        load_sparse(folder)
    assert not is_sparse_checkpoint(tmp_path / "nothing") and not is_sparse_checkpoint(folder / "config.json")

"""The sparsity_config block: provenance from the pruning report, calibration descriptions."""

import json

import pytest
import torch

from helpers.sparse_models import sparse_tiny_model
from polysparse.runtime.checkpoint import SparsityMetadata, describe_calibration, export, save_sparse
from polysparse.runtime.swap import sparsify_model


def test_provenance_from_the_pruning_report(tmp_path):
    source = tmp_path / "pruned"
    source.mkdir()
    report = {
        "polysparse_version": "0.1.0",
        "config": {"method": "wanda", "pattern": "2:4"},
        "calibration": {"spec": "handbook:de", "windows": 32},
        "summary": {"sparsity_of_pruned_layers": 0.5},
    }
    (source / "polysparse.json").write_text(json.dumps(report))
    model = sparse_tiny_model("llama", dtype=torch.float16)
    sparsify_model(model)
    save_sparse(model, tmp_path / "ckpt", source=source)
    block = json.loads((tmp_path / "ckpt" / "config.json").read_text())["sparsity_config"]
    assert block["method"] == "wanda" and block["sparsity"] == 0.5 and block["polysparse_version"] == "0.1.0"
    assert block["calibration"] == {"spec": "handbook:de", "language": "de", "source": "handbook"}
    assert (tmp_path / "ckpt" / "polysparse.json").is_file()
    # exports keep it
    out = export(tmp_path / "ckpt", tmp_path / "dense", "dense")
    assert json.loads((out / "config.json").read_text())["sparsity_config"]["method"] == "wanda"


@pytest.mark.parametrize(
    "spec, language, source",
    [
        ("handbook:de", "de", "handbook"),
        ("text:notes/*.txt:fr", "fr", "text"),
        ("text:notes.txt", None, "text"),
        ("handbook:de=0.5,handbook:en=0.5", "de+en", "handbook"),
        ("translate:de->en:gettext,shots=4", "de->en", "gettext (translation prompts)"),
        (None, None, None),
    ],
)
def test_describe_calibration(spec, language, source):
    assert describe_calibration(spec) == {"spec": spec, "language": language, "source": source}


def test_provenance_reads_the_structured_calibration_record_and_old_spec_strings():
    structured = {
        "spec": "handbook:de=0.5,manpages:fr=0.5",
        "language": "de+fr",
        "source": "handbook+manpages",
    }
    parts = [{"kind": "source", "spec": "handbook:de", "weight": 0.5}]
    recorded = SparsityMetadata.from_report({"calibration": {**structured, "parts": parts}})
    assert (recorded.calibration_language, recorded.calibration_source) == ("de+fr", "handbook+manpages")
    old = SparsityMetadata.from_report({"calibration": {"spec": "translate:de->en:gettext,shots=4"}})
    assert (old.calibration_language, old.calibration_source) == ("de->en", "gettext (translation prompts)")

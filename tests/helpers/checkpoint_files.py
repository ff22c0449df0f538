"""Helpers of the checkpoint tests: logits, layer comparison, copies and rewrites of a saved folder."""

import json
import shutil

import torch
from safetensors.torch import load_file, save_file

from polysparse.runtime import checkpoint as ckpt
from polysparse.runtime.swap import sparse_layers

WEIGHTS = "model.sparse24.safetensors"


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def same_sparse_layers(a, b):
    la, lb = sparse_layers(a), sparse_layers(b)
    assert la.keys() == lb.keys() and la
    for name in la:
        assert torch.equal(la[name].values, lb[name].values), name
        assert torch.equal(la[name].meta, lb[name].meta), name
        assert la[name].layout == lb[name].layout


def copy_folder(src, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(src, target)
    return target


def rewrite(folder, weights, mutate):
    """Change the tensors of a weight file and update the manifest, as a consistent but wrong file."""
    path = folder / weights
    tensors = load_file(path)
    mutate(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})
    config = json.loads((folder / "config.json").read_text())
    config["sparsity_config"]["files"][weights] = ckpt.file_digest(path)
    (folder / "config.json").write_text(json.dumps(config))

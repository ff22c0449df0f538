"""Streaming blocks from safetensors gives the same pruned model as loading it whole."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from helpers.tiny_models import random_windows, tiny_model, tiny_tokenizer
from polysparse.bench.cli import main
from polysparse.sparsify import PruneConfig, prune_model
from polysparse.sparsify.streaming import load_streaming_model


def saved(tmp_path, arch, shard=False):
    folder = tmp_path / f"src-{arch}"
    tiny_model(arch, seed=4).save_pretrained(folder, max_shard_size="60KB" if shard else "5GB")
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("arch", ["llama", "gemma3", "gpt2"])
def test_streamed_blocks_live_only_during_their_step(tmp_path, arch):
    folder = saved(tmp_path, arch, shard=True)
    model, _, streamer = load_streaming_model(folder)
    from polysparse.sparsify.model_graph import find_decoder_stack

    stack = find_decoder_stack(model)
    assert all(p.device.type == "meta" for p in stack.blocks.parameters())
    assert model.get_input_embeddings().weight.device.type == "cpu"
    seen = []

    class Watching:
        def load(self, index, block):
            streamer.load(index, block)
            loaded = [i for i, b in enumerate(stack.blocks) if next(b.parameters()).device.type != "meta"]
            seen.append(loaded)

        def unload(self, index, block):
            streamer.unload(index, block)

    config = PruneConfig(method="wanda", pattern="2:4", seqlen=16)
    prune_model(
        model,
        config,
        random_windows(n=3, length=10),
        progress=False,
        checkpoint_dir=tmp_path / "work",
        block_loader=Watching(),
    )
    assert seen == [[i] for i in range(len(stack.blocks))]
    assert all(p.device.type == "meta" for p in stack.blocks.parameters())


@pytest.mark.parametrize(
    "method,setting", [("sparsegpt", ["--pattern", "2:4"]), ("magnitude", ["--sparsity", "0.5"])]
)
def test_streamed_cli_output_equals_the_in_memory_one(tmp_path, method, setting):
    folder = saved(tmp_path, "llama", shard=True)
    text = tmp_path / "t.txt"
    text.write_text("Ein kleiner Text über Hunde und Katzen. " * 200)
    args = [
        "prune",
        "--model",
        str(folder),
        "--method",
        method,
        *setting,
        "--calib",
        f"text:{text}",
        "--nsamples",
        "3",
        "--seqlen",
        "24",
        "--quiet",
    ]
    assert main([*args, "--stream", "off", "--out", str(tmp_path / "whole")]) == 0
    assert main([*args, "--stream", "on", "--out", str(tmp_path / "streamed")]) == 0
    whole = load_file(str(tmp_path / "whole" / "model.safetensors"))
    index = json.loads((tmp_path / "streamed" / "model.safetensors.index.json").read_text())
    streamed = {}
    for name in set(index["weight_map"].values()):
        streamed.update(load_file(str(tmp_path / "streamed" / name)))
    assert whole.keys() == streamed.keys()
    for key in whole:
        assert torch.equal(whole[key], streamed[key]), key
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "streamed")
    assert (reloaded.model.layers[0].mlp.up_proj.weight == 0).float().mean() == pytest.approx(0.5)
    assert json.loads((tmp_path / "streamed" / "polysparse.json").read_text())["streamed"] is True
    assert not (tmp_path / ".streamed.work").exists()

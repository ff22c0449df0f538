"""The sequential driver: block inputs equal dense hidden states; per-block arguments; no cache."""

import pytest
import torch

from helpers.tiny_models import ARCHITECTURES, random_windows, tiny_model
from polysparse.sparsify.model_graph import find_decoder_stack
from polysparse.sparsify.walk import capture_block_inputs, sequential_blocks


def dense_hidden_states(model, windows):
    with torch.no_grad():
        out = model(
            input_ids=windows.input_ids,
            attention_mask=windows.attention_mask,
            output_hidden_states=True,
            use_cache=False,
        )
    return out.hidden_states


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_block_inputs_equal_dense_hidden_states(arch, batch_size):
    model = tiny_model(arch)
    windows = random_windows(n=4, length=12, seed=1, pad_last=4)
    reference = dense_hidden_states(model, windows)
    seen = []
    for step in sequential_blocks(model, windows, device="cpu", batch_size=batch_size, progress=False):
        got = torch.cat(list(step.hidden))
        torch.testing.assert_close(got, reference[step.index], rtol=1e-5, atol=1e-5)
        seen.append(step.index)
    assert seen == list(range(len(find_decoder_stack(model).blocks)))


def test_gemma3_blocks_get_their_own_arguments():
    """Sliding and full-attention blocks receive different masks and RoPE; block 0's would be wrong."""
    model = tiny_model("gemma3")
    windows = random_windows(n=2, length=12, seed=2)
    stack = find_decoder_stack(model)
    captured = capture_block_inputs(model, stack, windows, batch_size=2)
    sliding, full = captured.arguments[0][0].kwargs, captured.arguments[1][0].kwargs
    differs = [
        key
        for key in sliding
        if isinstance(sliding[key], (torch.Tensor, tuple)) and repr(sliding[key]) != repr(full.get(key))
    ]
    assert differs, "sliding and full attention blocks were given identical arguments"

    # Negative control: feeding block 1 (full attention) with block 0's arguments changes its output,
    # so the hidden-state equality test above would catch a driver that copies block 0's arguments.
    reference = dense_hidden_states(model, windows)
    block = stack.blocks[1]
    with torch.no_grad():
        right = block(reference[1], **full)
        wrong = block(reference[1], **sliding)
    torch.testing.assert_close(right, reference[2], rtol=1e-5, atol=1e-5)
    assert (right - wrong).abs().max() > 1e-3


def test_no_cache_travels_between_windows():
    from transformers.cache_utils import Cache

    model = tiny_model("llama")
    windows = random_windows(n=3, length=8, seed=3)
    captured = capture_block_inputs(model, find_decoder_stack(model), windows, batch_size=1)
    for per_block in captured.arguments:
        for arguments in per_block:
            values = list(arguments.args) + list(arguments.kwargs.values())
            assert not any(isinstance(v, Cache) for v in values)
            assert arguments.kwargs.get("use_cache", False) is False


def test_identical_arguments_are_stored_once():
    model = tiny_model("llama")
    windows = random_windows(n=5, length=8, seed=4)
    captured = capture_block_inputs(model, find_decoder_stack(model), windows, batch_size=1)
    assert all(len(per_block) == 1 for per_block in captured.arguments)
    assert all(index == [0] * 5 for index in captured.argument_index)


def test_only_the_working_block_is_on_the_working_device():
    """Each block is moved to the working device for its own step and moved home right after it."""
    model = tiny_model("qwen2")
    windows = random_windows(n=2, length=8)
    stack = find_decoder_stack(model)
    calls: dict[int, int] = {}
    for index, block in enumerate(stack.blocks):
        original = block.to

        def counting_to(*args, _index=index, _original=original, **kwargs):
            calls[_index] = calls.get(_index, 0) + 1  # odd count: away at the working device
            return _original(*args, **kwargs)

        block.to = counting_to
    for step in sequential_blocks(model, windows, device="cpu", progress=False):
        away = {i for i, count in calls.items() if count % 2 == 1}
        assert away == {step.index}
    assert calls == {0: 2, 1: 2, 2: 2}


def test_manual_block_by_block_run_matches_driver_after_pruning():
    """Pruning through the driver equals pruning each block by hand on the pruned model's activations."""
    from polysparse.sparsify.config import PruneConfig
    from polysparse.sparsify.driver import prune_model
    from polysparse.sparsify.methods import prune_wanda
    from polysparse.sparsify.model_graph import prunable_layers, weight_matrix
    from polysparse.sparsify.stats import LayerStatistics

    windows = random_windows(n=3, length=10, seed=5)
    config = PruneConfig(method="wanda", sparsity=0.5, seqlen=10)
    auto = tiny_model("llama", seed=7)
    prune_model(auto, config, windows, progress=False)

    manual = tiny_model("llama", seed=7)
    stack = find_decoder_stack(manual)
    for index, block in enumerate(stack.blocks):
        # Inputs of this block = the hidden states of the model pruned so far.
        hidden = dense_hidden_states(manual, windows)[index]
        layers = prunable_layers(block, stack.block_name(index))
        stats = {n: LayerStatistics(weight_matrix(m).shape[1], want_norms=True) for n, m in layers.items()}
        handles = [
            m.register_forward_hook(lambda mod, inp, out, n=n, stats=stats: stats[n].add(inp[0]))
            for n, m in layers.items()
        ]
        captured = capture_block_inputs(manual, stack, windows, batch_size=len(windows))
        arguments = captured.arguments[index][0]
        with torch.no_grad():
            block(hidden, *arguments.args, **arguments.kwargs)
        for h in handles:
            h.remove()
        for name, layer in layers.items():
            result = prune_wanda(weight_matrix(layer), stats[name], config)
            with torch.no_grad():
                layer.weight.copy_(result.weight)
    for (name, a), (_, b) in zip(auto.named_parameters(), manual.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)

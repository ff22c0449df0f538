"""reconstruct_block on its own: training that does not lower the block output error is undone."""

import torch

from helpers.blocks import LinearBlock
from polysparse.sparsify.reconstruction import ReconstructionSettings, reconstruct_block
from polysparse.sparsify.walk import BlockArguments


def _problem(seed: int):
    generator = torch.Generator().manual_seed(seed)
    block = LinearBlock(8)
    with torch.no_grad():
        block.proj.weight.copy_(torch.randn(8, 8, generator=generator) * 0.3)
    teacher = torch.randn(8, 8, generator=generator) * 0.3
    hidden = [torch.randn(1, 5, 8, generator=generator) for _ in range(4)]
    targets = [h @ teacher.t() for h in hidden]
    keep = torch.rand(8, 8, generator=generator) > 0.5
    with torch.no_grad():
        block.proj.weight.mul_(keep)
    arguments = [BlockArguments((), {}) for _ in hidden]
    masks = [torch.ones(1, 5, dtype=torch.bool) for _ in hidden]
    return block, hidden, arguments, masks, targets, keep


def test_training_that_raises_the_error_is_reverted_bitwise():
    block, hidden, arguments, masks, targets, keep = _problem(0)
    start = block.proj.weight.detach().clone()
    # One Adam step moves every kept weight by ~lr = 0.9, far past the optimum of weights of size ~0.3.
    result = reconstruct_block(
        block, hidden, arguments, masks, targets, {block.proj: keep}, ReconstructionSettings(1, 0.9)
    )
    assert result["reverted"] is True
    assert result["error_after"] >= result["error_before"]  # what training reached, before the undo
    assert torch.equal(block.proj.weight, start)


def test_training_that_lowers_the_error_is_kept_and_the_mask_stays_exact():
    block, hidden, arguments, masks, targets, keep = _problem(1)
    start = block.proj.weight.detach().clone()
    result = reconstruct_block(
        block, hidden, arguments, masks, targets, {block.proj: keep}, ReconstructionSettings(64, 1e-2)
    )
    assert result["reverted"] is False
    assert result["error_after"] < 0.75 * result["error_before"]  # half the weights are gone
    assert not torch.equal(block.proj.weight, start)
    assert torch.all(block.proj.weight[~keep] == 0)

"""The reconstruction's relative loss and proximal term: their math, their settings, what training does."""

import math

import pytest
import torch

from helpers.blocks import LinearBlock
from polysparse.sparsify.config import ConfigError, PruneConfig
from polysparse.sparsify.reconstruction import (
    ReconstructionSettings,
    masked_mse,
    proximal_penalty,
    reconstruct_block,
    relative_mse,
)
from polysparse.sparsify.walk import BlockArguments


def test_relative_mse_scores_each_token_against_its_own_norm_and_skips_padding():
    target = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]])  # squared norms 25, 1, 162
    output = torch.tensor([[[3.0, 2.0], [1.0, 1.0], [0.0, 0.0]]])  # squared errors 4, 1, 162
    mask = torch.tensor([[True, True, False]])
    assert relative_mse(output, target, mask).item() == pytest.approx((4 / 25 + 1 / 1) / 2)
    assert relative_mse(output, target, None).item() == pytest.approx((4 / 25 + 1 + 1) / 3)
    # Scaling a token scales its error and its norm alike: huge tokens weigh as much as small ones.
    scaled = torch.tensor([[1000.0], [1.0], [1.0]])
    assert relative_mse(output * scaled.t()[..., None], target * scaled.t()[..., None], mask).item() == (
        pytest.approx(relative_mse(output, target, mask).item())
    )
    assert masked_mse(output * 1000, target * 1000, mask).item() == pytest.approx(
        1e6 * masked_mse(output, target, mask).item()
    )


def test_relative_mse_of_a_zero_target_is_its_squared_error():
    zero = torch.zeros(1, 1, 3)
    assert relative_mse(torch.full((1, 1, 3), 2.0), zero, None).item() == 12.0


def test_proximal_penalty_is_the_mean_relative_squared_distance_per_layer():
    anchors = [torch.tensor([[1.0, 0.0], [2.0, 0.0]]), torch.tensor([[0.0, 3.0]])]  # squared norms 5, 9
    moved = [torch.tensor([[1.5, 0.0], [2.0, 0.0]]), torch.tensor([[0.0, 0.0]])]
    assert proximal_penalty(anchors, anchors).item() == 0.0
    assert proximal_penalty(moved, anchors).item() == pytest.approx((0.25 / 5 + 9 / 9) / 2)
    assert proximal_penalty([torch.ones(2)], [torch.zeros(2)]).item() == 2.0  # a zero anchor: norm 1
    with pytest.raises(ValueError, match="one anchor per weight"):
        proximal_penalty(moved, anchors[:1])


def _problem(seed: int, massive: float = 1.0):
    """A masked linear block to fit to a dense teacher; token 0 of every window scaled by ``massive``."""
    generator = torch.Generator().manual_seed(seed)
    block = LinearBlock(8)
    teacher = torch.randn(8, 8, generator=generator) * 0.3
    keep = torch.rand(8, 8, generator=generator) > 0.5
    with torch.no_grad():
        block.proj.weight.copy_(teacher * keep)
    hidden = [torch.randn(1, 6, 8, generator=generator) for _ in range(6)]
    for h in hidden:
        h[:, 0] *= massive
    targets = [h @ teacher.t() for h in hidden]
    arguments = [BlockArguments((), {}) for _ in hidden]
    masks = [torch.ones(1, 6, dtype=torch.bool) for _ in hidden]
    return block, hidden, arguments, masks, targets, keep


def _train(settings: ReconstructionSettings, massive: float = 1.0, seed: int = 0):
    block, hidden, arguments, masks, targets, keep = _problem(seed, massive)
    start = block.proj.weight.detach().clone()
    record = reconstruct_block(block, hidden, arguments, masks, targets, {block.proj: keep}, settings)
    return block, start, keep, record, (hidden, masks, targets)


def _mean_loss(block, data, loss) -> float:
    hidden, masks, targets = data
    with torch.no_grad():
        return sum(loss(block(h), t, m).item() for h, t, m in zip(hidden, targets, masks)) / len(hidden)


def test_each_loss_fits_its_own_objective_best_when_a_few_tokens_are_huge():
    """Token 0 of every window 100x larger: the mean squared error is its error, while the relative loss
    weighs it as one token among six; each training wins on the objective it optimised."""
    by_mse = _train(ReconstructionSettings(300, 3e-2, loss="mse"), massive=100.0)
    by_relative = _train(ReconstructionSettings(300, 3e-2, loss="relative"), massive=100.0)
    assert by_relative[3]["loss"] == "relative" and "loss" not in by_mse[3]
    assert not by_mse[3]["reverted"] and not by_relative[3]["reverted"]
    mse_block, relative_block, data = by_mse[0], by_relative[0], by_mse[4]
    assert _mean_loss(relative_block, data, relative_mse) < 0.8 * _mean_loss(mse_block, data, relative_mse)
    assert _mean_loss(mse_block, data, masked_mse) < 0.8 * _mean_loss(relative_block, data, masked_mse)
    for block, _, keep, _, _ in (by_mse, by_relative):
        assert torch.all(block.proj.weight[~keep] == 0)


def test_the_proximal_term_holds_the_weights_near_where_the_block_started():
    free = _train(ReconstructionSettings(64, 1e-2))
    held = _train(ReconstructionSettings(64, 1e-2, prox=10.0))
    assert held[3]["prox"] == 10.0 and "prox" not in free[3]
    distance = {
        name: proximal_penalty([block.proj.weight.detach()], [start]).item()
        for name, (block, start, *_rest) in (("free", free), ("held", held))
    }
    assert 0 < distance["held"] < 0.5 * distance["free"]
    assert held[3]["error_after"] > free[3]["error_after"]  # the pull costs some calibration fit
    assert torch.all(held[0].proj.weight[~held[2]] == 0)


@pytest.mark.parametrize(
    "settings, message",
    [({"loss": "l1"}, "unknown reconstruction loss"), ({"prox": -1.0}, "zero or positive")],
)
def test_bad_reconstruction_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ReconstructionSettings(4, 1e-3, **settings)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("reconstruct_loss", "l2", "reconstruct_loss must be one of mse, relative"),
        ("reconstruct_prox", -0.5, "reconstruct_prox must be zero"),
        ("reconstruct_prox", math.nan, "reconstruct_prox must be zero"),
        ("reconstruct_prox", math.inf, "reconstruct_prox must be zero"),
        ("reconstruct_prox", True, "reconstruct_prox must be zero"),
    ],
)
def test_prune_config_refuses_bad_reconstruction_loss_and_prox(field, value, message):
    with pytest.raises(ConfigError, match=message):
        PruneConfig(pattern="2:4", reconstruct="blockwise", **{field: value})


def test_prune_config_defaults_keep_the_plain_mean_squared_error():
    config = PruneConfig(pattern="2:4", reconstruct="blockwise")
    assert (config.reconstruct_loss, config.reconstruct_prox) == ("mse", 0.0)
    assert PruneConfig(pattern="2:4", reconstruct_prox=3).reconstruct_prox == 3

"""The smallest block the reconstruction tests train: one bias-free linear layer."""

import torch
from torch import nn


class LinearBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)

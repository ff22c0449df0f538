"""Literal, slow PyTorch ports of the research code, kept as oracles for the pruning methods.

* Wanda: ``prune_wanda`` of locuslab/wanda (lib/prune.py), with its running-average activation norm
  (``WrappedGPT.add_batch``) and per-row stable sort; N:M via ``topk`` every M columns.
* Magnitude: the same per-output-row comparison on ``|W|`` (DESIGN.md: "same comparison groups"; the Wanda
  repository's own magnitude baseline thresholds the whole layer instead).
* SparseGPT: ``SparseGPT.add_batch`` and ``SparseGPT.fasterprune`` of IST-DASLab/sparsegpt.

These are copies of the algorithms as published (re-typed, not imported), used only to check polysparse.
"""

from __future__ import annotations

import math

import torch


class WandaNorms:
    """``WrappedGPT.add_batch``: running mean over *sequences* of per-feature squared norms."""

    def __init__(self, columns: int):
        self.scaler_row = torch.zeros(columns)
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:  # inp: (batch, seq, in)
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = inp.type(torch.float32)
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples


def wanda_oracle(weight, scaler_row, sparsity_ratio=0.0, prune_n=0, prune_m=0, magnitude=False):
    """Returns the pruned weight and the *prune* mask (True = pruned), as the Wanda code computes them."""
    W = weight.clone().float()
    W_metric = torch.abs(W) if magnitude else torch.abs(W) * torch.sqrt(scaler_row.reshape((1, -1)))
    W_mask = torch.zeros_like(W_metric) == 1
    if prune_n != 0:
        for ii in range(W_metric.shape[1]):
            if ii % prune_m == 0:
                tmp = W_metric[:, ii : (ii + prune_m)].float()
                W_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    else:
        sort_res = torch.sort(W_metric, dim=-1, stable=True)
        indices = sort_res[1][:, : int(W_metric.shape[1] * sparsity_ratio)]
        W_mask.scatter_(1, indices, True)
    W[W_mask] = 0
    return W, W_mask


class SparseGPTOracle:
    """``SparseGPT``: Hessian accumulation and ``fasterprune`` exactly as published."""

    def __init__(self, weight: torch.Tensor):
        self.weight = weight.clone().float()
        self.rows, self.columns = weight.shape
        self.H = torch.zeros((self.columns, self.columns))
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:  # inp: (batch, seq, in)
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def fasterprune(self, sparsity, prunen=0, prunem=0, blocksize=128, percdamp=0.01):
        W = self.weight.clone()
        H = self.H.clone()
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0
        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        H = torch.linalg.cholesky(H, upper=True)
        Hinv = H
        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            if prunen == 0:
                tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
                thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
                mask1 = tmp <= thresh
            else:
                mask1 = torch.zeros_like(W1) == 1
            for i in range(count):
                w = W1[:, i]
                d = Hinv1[i, i]
                if prunen != 0 and i % prunem == 0:
                    tmp = (
                        W1[:, i : (i + prunem)] ** 2
                        / (torch.diag(Hinv1)[i : (i + prunem)].reshape((1, -1))) ** 2
                    )
                    mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
                q = w.clone()
                q[mask1[:, i]] = 0
                Q1[:, i] = q
                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1
            W[:, i1:i2] = Q1
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        return W


def reconstruction_error(original: torch.Tensor, pruned: torch.Tensor, inputs: torch.Tensor) -> float:
    """``||W X - W' X||_F^2`` over the calibration tokens (inputs: tokens x in)."""
    x = inputs.reshape(-1, inputs.shape[-1]).double()
    return ((x @ original.double().t() - x @ pruned.double().t()) ** 2).sum().item()

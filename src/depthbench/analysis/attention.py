"""Swin attention statistics: mean attention distance and entropy per head.

Raghu et al., "Do Vision Transformers See Like Convolutional Neural Networks?", NeurIPS 2021;
Dosovitskiy et al., ICLR 2021 (Fig. 7): the attention-weighted distance between a query and its
keys, in pixels of the input image, averaged over queries and images. In Swin every pair lies in
one window; in a shifted block, a pair whose tokens come from different image regions is masked
(it was not a neighbourhood before the cyclic shift) and is not counted: the probabilities are
renormalised over the pairs the mask allows. Within one region the window coordinates equal the
image coordinates, so the distance of an allowed pair is its true distance.
"""

from __future__ import annotations

import torch


def window_distances(ws: int, pitch: float = 1.0) -> torch.Tensor:
    """N x N (N = ws*ws) Euclidean distance between token centres of one window, in `pitch`
    units (pixels per token)."""
    yy, xx = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    c = torch.stack([yy.flatten(), xx.flatten()], 1).double()
    return torch.cdist(c, c) * pitch


def mean_pairwise_distance(ws: int, pitch: float = 1.0) -> float:
    """Closed form of the uniform attention's distance: the mean distance over all ordered token
    pairs of a ws x ws window (self pairs included, as uniform attention includes them)."""
    return float(window_distances(ws, pitch).mean())


def head_statistics(attn: torch.Tensor, ws: int, pitch: float, mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sums over queries of (distance, entropy) per head, and the number of queries per head.

    attn: probabilities B, nW, heads, N, N (windows of one image consecutive) or B, heads, N, N
    (one window, no mask). mask: nW, N, N additive (0 = allowed) or None.
    """
    p = attn.float()  # sums below are taken in float64
    if p.dim() == 4:
        p = p.unsqueeze(1)  # B, 1, heads, N, N
    if mask is not None:
        allowed = (mask == 0).to(p.dtype).unsqueeze(1)  # nW, 1, N, N
        p = p * allowed
        p = p / p.sum(-1, keepdim=True).clamp_min(1e-30)
    d = window_distances(ws, pitch).to(p.device, p.dtype)
    dist = (p * d).sum(-1)  # B, nW, heads, N
    ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    heads = p.shape[2]
    count = p.numel() // (heads * p.shape[-1])
    return (dist.movedim(2, 0).reshape(heads, -1).double().sum(1),
            ent.movedim(2, 0).reshape(heads, -1).double().sum(1), count)

"""Linear CKA (centered kernel alignment) between layer representations.

Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019 (linear CKA);
Nguyen, Raghu & Kornblith, "Do Wide and Deep Networks Learn the Same Things?", ICLR 2021 (the
minibatch estimator: the unbiased HSIC of Song et al. 2012 averaged over minibatches, so memory
holds one minibatch's n x n Gram matrices, never the whole feature matrix).

Written here rather than taken from a library: the formulas are a few lines, and the maintained
packages (e.g. `torch_cka`) hook modules themselves and cannot share the forward pass the other
measurements read.
"""

from __future__ import annotations

import torch


def gram(x: torch.Tensor) -> torch.Tensor:
    """n, ... -> n x n linear kernel of the flattened features, returned in float64. The product
    runs in the input's precision: float32 activations of a 224 px stage would take hundreds of
    MB in float64, and the Gram matrix of float32 features is accurate to ~1e-6 relative."""
    x = x.reshape(x.shape[0], -1)
    return (x @ x.T).double()


def center(k: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T/n (double centering)."""
    k = k - k.mean(0, keepdim=True)
    return k - k.mean(1, keepdim=True)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """The closed form on features: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)
    (the biased HSIC's)."""
    x = x.reshape(x.shape[0], -1).double()
    y = y.reshape(y.shape[0], -1).double()
    x = x - x.mean(0)
    y = y - y.mean(0)
    num = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(num / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)))


def hsic_unbiased(ks: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of every pair: ks (a, n, n), ls (b, n, n) Gram
    matrices of the same n examples -> a x b. Needs n >= 4."""
    n = ks.shape[-1]
    if n < 4:
        raise ValueError(f"unbiased HSIC needs at least 4 examples per minibatch, got {n}")
    eye = torch.eye(n, dtype=torch.bool, device=ks.device)
    k = ks.masked_fill(eye, 0.0)
    l_ = ls.masked_fill(eye, 0.0)
    trace = torch.einsum("inm,jnm->ij", k, l_)  # tr(K L) for symmetric L
    rk, rl = k.sum(-1), l_.sum(-1)  # row sums: a, n and b, n
    sk, sl = rk.sum(-1), rl.sum(-1)
    value = trace + torch.outer(sk, sl) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (rk @ rl.T)
    return value / (n * (n - 3))


def cka_from_hsic(xy: torch.Tensor, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """CKA matrix from HSIC(x_i, y_j), HSIC(x_i, x_i), HSIC(y_j, y_j)."""
    return xy / torch.sqrt(torch.clamp(torch.outer(xx, yy), min=1e-300))


def cka_from_grams(ks: torch.Tensor, ls: torch.Tensor) -> torch.Tensor:
    """Biased (closed-form) linear CKA of every pair from Gram matrices: a x b."""
    kc = torch.stack([center(k) for k in ks])
    lc = torch.stack([center(m) for m in ls])
    xy = torch.einsum("inm,jnm->ij", kc, lc)
    return cka_from_hsic(xy, (kc * kc).sum((1, 2)), (lc * lc).sum((1, 2)))


class MinibatchCKA:
    """Accumulates unbiased HSIC over minibatches for every pair of two lists of layers:
    CKA = mean HSIC(K, L) / sqrt(mean HSIC(K, K) mean HSIC(L, L)) (Nguyen et al. 2021)."""

    def __init__(self) -> None:
        self.xy: torch.Tensor | None = None
        self.xx: torch.Tensor | None = None
        self.yy: torch.Tensor | None = None
        self.batches = 0

    def update(self, ks: torch.Tensor, ls: torch.Tensor | None = None) -> None:
        """ks: a, n, n and ls: b, n, n Gram matrices of one minibatch (ls = ks: self-similarity)."""
        ls = ks if ls is None else ls
        xy = hsic_unbiased(ks, ls)
        xx = torch.diagonal(hsic_unbiased(ks, ks)) if ls is not ks else torch.diagonal(xy)
        yy = torch.diagonal(hsic_unbiased(ls, ls)) if ls is not ks else xx
        if self.xy is None:
            self.xy, self.xx, self.yy = xy, xx, yy
        else:
            self.xy, self.xx, self.yy = self.xy + xy, self.xx + xx, self.yy + yy
        self.batches += 1

    def result(self) -> torch.Tensor:
        if self.xy is None:
            raise ValueError("no minibatch was accumulated")
        return cka_from_hsic(self.xy, self.xx, self.yy)


def minibatch_cka(grams: list[torch.Tensor], other: list[torch.Tensor] | None = None
                  ) -> torch.Tensor:
    """CKA matrix from per-minibatch Gram stacks (each a, n, n; `other` each b, n, n)."""
    acc = MinibatchCKA()
    for i, ks in enumerate(grams):
        acc.update(ks, None if other is None else other[i])
    return acc.result()


def redundant_tail(cka: list[list[float]], threshold: float = 0.9) -> int:
    """How many blocks before the last one have output CKA >= `threshold` with the last block's,
    counted back from the end until one falls below: the late blocks that change the
    representation little (0 when the second-to-last block already differs)."""
    last = len(cka) - 1
    k = 0
    while last - k - 1 >= 0 and cka[last - k - 1][last] >= threshold:
        k += 1
    return k

"""Simulated studies: the per-image right/wrong of two models, generated without training, under
which the report's tests are calibrated. The suite checks its calibration with them; the
benchmarks `bench_calibration` and `bench_cv_calibration` measure the rates BENCHMARKS.md gives.

One split, several seeds (`paired_p_values`, `reject_rate`):
- `suite_model`: P(right) = Phi(0.6 + difficulty_i + u_model,i + v_model,s), difficulty N(0, 1),
  an image x architecture interaction u and a small run-to-run shift v.
- `irt_model`: an item-response model as real test sets behave: most images are always right or
  always wrong whatever the run (`fixed`); the rest have a difficulty N(0, 1) on the logit scale,
  an image x architecture interaction and a run-to-run shift of the logit (sd `shift`).

Cross-validated (`cv_p_values`, `cv_reject`): `LearnerStudy`, real learners on ELPV trained on
the folds `data.folds.make_folds` makes. Each image is `SIDE`x`SIDE` grayscale, reduced to `DIMS`
principal components (fitted on the images and their mirror images). The learner is a
one-hidden-layer network of `UNITS` random ReLU units (the "architecture", drawn once per
simulated study) whose readout is fitted by ridge regression on one-hot labels; each run keeps a
seeded random share `KEEP` of the units, and optionally adds a seeded shift to its class scores
(`jitter`: runs that differ in how readily they predict each class, as small-data networks do).
A and B are equally good by construction: B is A looking at mirrored images, and every simulated
study draws each image's orientation at random, so the data's distribution is mirror-symmetric
and A on a dataset is B on its mirror. Each cell holds out `VAL` of each class of the rest as
validation and trains with the seed `data.folds.cell_seed` gives, so the training sets overlap
as a study's do. Vectorised: each study's Gram matrix per fold is computed once and every run
solves its own small ridge system.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image
from scipy import stats

from depthbench.data.folds import cell_seed, make_folds
from depthbench.data.sources import open_source
from depthbench.report import stats as S

N_IMAGES = 392  # test images of a simulated single split: the quick study's test split
SIDE, DIMS = 16, 24  # the learner's image side in pixels, principal components kept
UNITS, KEEP, RIDGE = 96, 0.5, 1e-2  # random units, the share a run keeps, ridge per image
VAL, TEST = 0.1, 0.15  # a study's defaults


# --------------------------------------------------------------------- one split, several seeds
def suite_model(rng, sims: int, seeds: int, delta: float = 0.0, interaction: float = 0.7,
                seed_sd: float = 0.07, n: int = N_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong of models A and B, (sims, seeds, images) each; `delta` adds to A's P(right)."""
    z = rng.normal(size=(sims, 1, n))
    ua, ub = rng.normal(0, interaction, (2, sims, 1, n))
    va, vb = rng.normal(0, seed_sd, (2, sims, seeds, 1))
    pa = np.clip(stats.norm.cdf(0.6 + z + ua + va) + delta, 0, 1)
    pb = stats.norm.cdf(0.6 + z + ub + vb)
    return rng.random(pa.shape) < pa, rng.random(pb.shape) < pb


def irt_model(rng, sims: int, seeds: int, shift: float = 1.0, logit_delta: float = 0.0,
              fixed: float = 0.7, interaction: float = 1.0, n: int = N_IMAGES
              ) -> tuple[np.ndarray, np.ndarray]:
    """Right/wrong of models A and B, (sims, seeds, images) each; `logit_delta` adds to A's logit
    (a true difference, on the images that are not fixed)."""
    kind = rng.random((sims, 1, n))
    theta = np.where(kind < 0.8 * fixed, 8.0, np.where(kind < fixed, -8.0,
                                                        rng.normal(0, 1, (sims, 1, n))))
    ua, ub = rng.normal(0, interaction, (2, sims, 1, n))
    va, vb = rng.normal(0, shift, (2, sims, seeds, 1))
    pa = 1 / (1 + np.exp(-(theta + ua + va + logit_delta)))
    pb = 1 / (1 + np.exp(-(theta + ub + vb)))
    return rng.random(pa.shape) < pa, rng.random(pb.shape) < pb


def paired_p_values(a: np.ndarray, b: np.ndarray, method: str = "report") -> np.ndarray:
    """Per simulation: the report's p (exact McNemar for one seed, `seeds_p` for several), or
    one of its two parts alone: `method="crossed"` (the report's test before the seed-level t),
    `method="seed"`."""
    if a.shape[1] == 1:
        return S.mcnemar_p((a & ~b).sum(axis=(1, 2)), (~a & b).sum(axis=(1, 2)))
    d = a.astype(float) - b
    if method == "crossed":
        return np.nan_to_num(S.crossed_p(d), nan=1.0)
    return S.seed_p(d) if method == "seed" else S.seeds_p(d)


def reject_rate(a, b, method: str = "report", alpha: float = S.ALPHA) -> float:
    return float(np.mean(paired_p_values(a, b, method) < alpha))


# ------------------------------------------------------------------ cross-validated: a learner
@functools.lru_cache(maxsize=4)
def elpv_features(n: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, the mirror images' features, labels) of ELPV, or of `n` images of it (each
    class in proportion, the first by path): `DIMS` principal components of the 16x16 grayscale
    images, standardised, fitted on the images and their mirrors together."""
    source = open_source("elpv")
    files = source.candidates  # the bundled files, listed without hashing them all
    if n:
        by_class = [[f for f in files if f.label == c] for c in range(len(source.classes))]
        files = [f for fs in by_class for f in fs[:max(2, round(n * len(fs) / len(files)))]]
    pixels = np.stack([np.asarray(Image.open(source.abspath(f.path)).convert("L").resize(
        (SIDE, SIDE), Image.BILINEAR), dtype=np.float64) for f in files])
    flat, mirror = pixels.reshape(len(files), -1), pixels[:, :, ::-1].reshape(len(files), -1)
    both = np.concatenate([flat, mirror])
    centre = both.mean(axis=0)
    _, sv, vt = np.linalg.svd(both - centre, full_matrices=False)
    basis = vt[:DIMS].T / sv[:DIMS] * np.sqrt(both.shape[0])
    return (flat - centre) @ basis, (mirror - centre) @ basis, np.array([f.label for f in files])


# ------------------------------------------------------------------------------------ learner
class LearnerStudy:
    """One simulated study of the learner: the images' orientations, the architecture's random
    units, and both models' features of every image (`phi[m]`, a column of ones appended)."""

    def __init__(self, index: int, features, n_images: int = 0, jitters=(0.0,)):
        plain, mirror, labels = features
        rng = np.random.default_rng([7, index])
        keep = (np.sort(rng.choice(labels.size, n_images, replace=False)) if n_images
                else np.arange(labels.size))
        self.index, self.labels, self.jitters = index, labels[keep], tuple(jitters)
        flip = rng.random(keep.size) < 0.5
        weights = rng.normal(size=(DIMS, UNITS)) / np.sqrt(DIMS)
        bias = rng.normal(size=UNITS)
        views = (np.where(flip[:, None], mirror[keep], plain[keep]),
                 np.where(flip[:, None], plain[keep], mirror[keep]))  # A's, and B's mirrored
        self.phi = [np.concatenate([np.maximum(v @ weights + bias, 0.0),
                                    np.ones((keep.size, 1))], axis=1) for v in views]
        self.onehot = np.eye(int(labels.max()) + 1)[self.labels]
        self.gram = [p.T @ p for p in self.phi]
        self.rhs = [p.T @ self.onehot for p in self.phi]

    @property
    def n(self) -> int:
        return self.labels.size

    def holdout(self, rng, share: float, among: np.ndarray) -> np.ndarray:
        """`int(share * n)` of each class among the images `among` (a mask), at random."""
        out = np.zeros(self.n, dtype=bool)
        for c in np.unique(self.labels):
            idx = np.flatnonzero(among & (self.labels == c))
            out[rng.permutation(idx)[:int(share * np.sum(self.labels == c))]] = True
        return out

    def runs(self, cells) -> np.ndarray:
        """cells: [(test mask, held-out mask, [seed of each run])], every cell with as many
        runs. Right/wrong of A and B on every image (False outside the test mask) for each
        jitter: (jitters, cells, runs, 2, n)."""
        units = round(KEEP * UNITS)
        systems, meta = [], []
        for ci, (test, held, seeds) in enumerate(cells):
            out = test | held
            ridge = RIDGE * (self.n - out.sum()) * np.eye(units + 1)
            for m in range(2):
                part = self.phi[m][out]
                gram = self.gram[m] - part.T @ part
                rhs = self.rhs[m] - part.T @ self.onehot[out]
                for si, seed in enumerate(seeds):
                    rng = np.random.default_rng([seed, m])
                    sel = np.append(np.sort(rng.choice(UNITS, units, replace=False)), UNITS)
                    systems.append((gram[np.ix_(sel, sel)] + ridge, rhs[sel]))
                    meta.append((ci, si, m, sel, rng.normal(size=self.onehot.shape[1])))
        beta = np.linalg.solve(np.stack([a for a, _ in systems]),
                               np.stack([b for _, b in systems]))
        right = np.zeros((len(self.jitters), len(cells), len(cells[0][2]), 2, self.n),
                         dtype=bool)
        tested = [(self.phi[0][c[0]], self.phi[1][c[0]], self.labels[c[0]]) for c in cells]
        for (ci, si, m, sel, shift), b in zip(meta, beta):
            scores = tested[ci][m][:, sel] @ b
            for j, jit in enumerate(self.jitters):
                right[j, ci, si, m, cells[ci][0]] = (
                    (scores + jit * shift).argmax(-1) == tested[ci][2])
        return right

    def cv(self, folds: int, repeats: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
        """(d[jitter, repeat, seed, image] = A right - B right, fold[repeat, image]) of a
        `folds` x `repeats` study with `seeds` runs per cell."""
        fold = make_folds(self.labels, None, folds, repeats, seed=self.index)
        cells = []
        for r in range(repeats):
            for k in range(folds):
                test = fold[r] == k
                held = self.holdout(np.random.default_rng([self.index, r, k]), VAL, ~test)
                cells.append((test, held, [cell_seed(1000 * self.index + s, r, k)
                                           for s in range(seeds)]))
        right = self.runs(cells).reshape(len(self.jitters), repeats, folds, seeds, 2, self.n)
        right = right.any(axis=2)  # each image is tested in one fold per repeat
        return right[..., 0, :].astype(np.int8) - right[..., 1, :], fold

    def split(self, seeds: int) -> np.ndarray:
        """d[jitter, seed, test image] of the single split (10% validation, 15% test per class)
        with `seeds` runs."""
        rng = np.random.default_rng([self.index, 99])
        test = self.holdout(rng, TEST, np.ones(self.n, dtype=bool))
        held = self.holdout(rng, VAL, ~test)
        right = self.runs([(test, held, [1000 * self.index + s + 1 for s in range(seeds)])])
        right = right[:, 0]
        return right[..., 0, :][..., test].astype(np.int8) - right[..., 1, :][..., test]


# ---------------------------------------------------------------- cross-validated: the tests
def sufficient(d: np.ndarray, fold: np.ndarray, folds: int):
    """The cells' sums of d and d², fold sizes and image_sq of a batch d[sim, r, s, i] with
    fold[sim, r, i] (`stats.cv_fit`'s arrays)."""
    sims, repeats, seeds, n = d.shape
    d = d.astype(np.float64)
    base = (np.arange(sims)[:, None] * repeats + np.arange(repeats)[None, :]) * folds
    cell = ((base[..., None] + fold)[:, :, None, :] * seeds
            + np.arange(seeds)[None, None, :, None])
    size = sims * repeats * folds * seeds
    shape = (sims, repeats, folds, seeds)
    total = np.bincount(cell.ravel(), d.ravel(), size).reshape(shape)
    sq = np.bincount(cell.ravel(), (d * d).ravel(), size).reshape(shape)
    sizes = np.bincount((base[..., None] + fold).ravel(), None,
                        sims * repeats * folds).reshape(shape[:3])
    return total, sq, sizes, np.sum(d.sum(axis=(1, 2)) ** 2, axis=-1)


def cv_p_values(d: np.ndarray, fold: np.ndarray, folds: int, method: str = "report"
             ) -> np.ndarray:
    """Per simulated study: the report's p (`stats.cv_p`), or the naive t over the cells
    (`naive`), McNemar on the pooled predictions (`mcnemar`), the corrected k-fold t
    (`corrected`)."""
    total, sq, sizes, image_sq = sufficient(d, fold, folds)
    if method == "report":
        return S.cv_p(total, sq, sizes, image_sq)
    if method == "mcnemar":
        return S.mcnemar_p((d == 1).sum(axis=(1, 2, 3)), (d == -1).sum(axis=(1, 2, 3)))
    x = (total / sizes[..., None]).reshape(len(d), -1)
    j, n = x.shape[1], sizes.mean(axis=(1, 2))
    factor = 1 / j + (n / ((d.shape[-1] - n) * (1 - VAL)) if method == "corrected" else 0)
    return 2 * stats.t.sf(np.abs(x.mean(axis=1)) / np.sqrt(factor * x.var(axis=1, ddof=1)),
                          j - 1)


CV_METHODS = ("naive", "mcnemar", "corrected", "report")


def cv_reject(d, fold, folds, method="report", alpha=S.ALPHA) -> float:
    return float(np.mean(cv_p_values(d, fold, folds, method) < alpha))

"""Calibration of the report's paired tests: the false-positive rate at nominal 5% with the null
true, and the power for a true difference, under two generative models of per-image outcomes.

- `suite_model`: P(right) = Phi(0.6 + difficulty_i + u_model,i + v_model,s), difficulty N(0, 1),
  an image x architecture interaction u (sd 0.7) and a small run-to-run shift v (sd 0.07, about 2
  points of accuracy).
- `irt_model`: an item-response model as real test sets behave: 70% of the images are always right
  (56%) or always wrong (14%) whatever the run; the rest have a difficulty N(0, 1) on the logit
  scale, an image x architecture interaction (sd 1 logit) and a run-to-run shift of the logit
  (sd `shift`; 0.7 and 1.0 give runs whose accuracies differ by about 3 and 4.5 points sd).

Both draw 392 test images (the quick study's test split), then every (seed, image) outcome. The
suite (tests/test_stats.py) checks the same cells with 1,500 simulations each; this module gives
the figures BENCHMARKS.md quotes (`python -m benchmarks --only bench_calibration`, 10,000 each).
numpy only, vectorised: a few seconds per cell.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from depthbench.report import stats as S

N_IMAGES = 392


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


def p_values(a: np.ndarray, b: np.ndarray, method: str = "report") -> np.ndarray:
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
    return float(np.mean(p_values(a, b, method) < alpha))


def run_sd_points(a: np.ndarray) -> float:
    """Run-to-run sd of one model's accuracy, in points (mean over simulations)."""
    return float(100 * np.mean(a.mean(axis=-1).std(axis=-1, ddof=1)))


CELLS = [("suite", suite_model, {}, {"delta": 0.06}),
         ("item response, shift 0.7", irt_model, {"shift": 0.7}, {"logit_delta": 0.8}),
         ("item response, shift 1.0", irt_model, {"shift": 1.0}, {"logit_delta": 0.8})]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_calibration", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="500 simulations per cell")
    p.add_argument("--sims", type=int, default=10_000)
    args = p.parse_args(argv)
    sims = 500 if args.quick else args.sims
    print("## Calibration of the paired tests (false positives at nominal 5%, null true)\n")
    print(f"{sims} simulated studies per cell, {N_IMAGES} test images; power: the same model with "
          "a true difference (Δ as simulated). Command: `python -m benchmarks --only "
          "bench_calibration`.\n")
    print("| generative model | seeds | run-to-run sd (points) | false positives: crossed t alone "
          "| false positives: seed-level t alone | false positives: report's test "
          "| true Δ (points) | power: crossed t alone | power: report's test |")
    print("|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for name, model, kw, effect in CELLS:
        for seeds in (2, 3, 5):
            rng = np.random.default_rng([seeds, len(name)])
            a, b = model(rng, sims, seeds, **kw)
            alt_a, alt_b = model(rng, sims, seeds, **kw, **effect)
            delta = 100 * float(np.mean(alt_a.mean(-1) - alt_b.mean(-1)))
            print(f"| {name} | {seeds} | {run_sd_points(a):.1f} | "
                  f"{100 * reject_rate(a, b, 'crossed'):.1f}% | "
                  f"{100 * reject_rate(a, b, 'seed'):.1f}% | {100 * reject_rate(a, b):.1f}% | "
                  f"{delta:+.1f} | {100 * reject_rate(alt_a, alt_b, 'crossed'):.0f}% | "
                  f"{100 * reject_rate(alt_a, alt_b):.0f}% |", flush=True)
    print(f"\n_{time.perf_counter() - t0:.0f} s_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Calibration of the report's paired tests: the false-positive rate at nominal 5% with the null
true, and the power for a true difference, under the two generative models of per-image outcomes
in `depthbench.testing.calibration` (`suite_model`, `irt_model`: their parameters there).

Both draw `N_IMAGES` test images (the quick study's test split), then every (seed, image) outcome.
The suite (tests/test_stats.py) checks the same cells with fewer simulations; this module gives the
figures BENCHMARKS.md quotes (`python -m benchmarks --only bench_calibration`). numpy only,
vectorised: a few seconds per cell.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from depthbench.testing.calibration import N_IMAGES, irt_model, reject_rate, suite_model


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

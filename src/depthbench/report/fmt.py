"""How the report prints numbers: accuracies as percentages, differences in points, p-values,
mean ± sd over seeds, intervals, parameter and MAC counts. `None` and nan print as "–"."""

from __future__ import annotations

import math

import numpy as np

from depthbench.report import stats as S


def ok(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def pct(x, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if ok(x) else "–"


def pts(x) -> str:
    return f"{100 * x:+.1f}" if ok(x) else "–"


def fmt_p(p) -> str:
    if not ok(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def mean_sd_text(values, kind: str = "acc") -> str:
    vals = [v for v in values if ok(v)]
    if not vals:
        return "–"
    m, sd = S.mean_sd(vals)
    if ok(sd) and sd < 1e-9 * max(1.0, abs(m)):  # equal values up to float rounding
        sd = 0.0
    if kind == "acc":
        return f"{100 * m:.1f}%" + (f" ± {100 * sd:.1f}" if len(vals) > 1 else "")
    if kind == "pts":
        return f"{100 * m:+.1f}" + (f" ± {100 * sd:.1f}" if len(vals) > 1 else "")
    return f"{m:.4g}" + (f" ± {sd:.2g}" if len(vals) > 1 else "")


def ci_text(low, high) -> str:
    return f"[{100 * low:.1f}, {100 * high:.1f}]" if ok(low) and ok(high) else "–"


def pts_ci(low, high) -> str:
    return f"[{pts(low)}, {pts(high)}]" if ok(low) and ok(high) else "–"


def params_text(p) -> str:
    return f"{p / 1e6:.2f} M" if ok(p) else "–"


def gmacs_text(m) -> str:
    return f"{m / 1e9:.3g}" if ok(m) else "–"


def about(n: int) -> str:
    """A count to two significant figures, with thousands separators: 162158 -> '160,000'."""
    n = int(n)
    return f"{round(n, 2 - len(str(abs(n)))) if abs(n) >= 100 else n:,}"


def mean(values) -> float:
    vals = [v for v in values if ok(v)]
    return float(np.mean(vals)) if vals else float("nan")

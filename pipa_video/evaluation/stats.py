"""Seed statistics: mean and standard deviation per method, paired differences with a Student t interval.

Runs of two methods at the same seeds are paired: the interval is that of the mean per-seed difference,
mean +- t(0.975, n - 1) * sd / sqrt(n), with sd the sample standard deviation (n - 1) of the
differences. The t quantile comes from the exact Student t CDF for integer degrees of freedom
(Abramowitz & Stegun 26.7.3-4), inverted by bisection, so no SciPy is needed.
"""
from __future__ import annotations

import math
from typing import Sequence


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` >= 1 (integer) degrees of freedom."""
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:  # A(t|v) = 2/pi [theta + sin cos (1 + 2/3 cos^2 + ... + (2*4..(v-3))/(1*3..(v-2)) cos^(v-3))]
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        a = 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    else:  # A(t|v) = sin [1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(v-2)]
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        a = s * total
    return 0.5 + math.copysign(a / 2.0, t)


def student_t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = ``p``, for 0.5 < p < 1 (bisection to 1e-10)."""
    if not 0.5 < p < 1.0:
        raise ValueError(f"quantile level must be in (0.5, 1), got {p}")
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        low, high = (mid, high) if student_t_cdf(mid, df) < p else (low, mid)
        if high - low < 1e-10:
            break
    return (low + high) / 2.0


def mean_std(values: Sequence[float]) -> dict[str, float | None]:
    """``mean`` and sample ``std`` (n - 1; None for one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_std: no values")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std}


def paired_difference(a: Sequence[float], b: Sequence[float], *, level: float = 0.95) -> dict:
    """``a - b`` seed by seed: ``per_seed``, ``mean``, ``std``, ``n`` and the Student t interval of the mean
    (``ci95_low`` / ``ci95_high`` for level 0.95; None with a single pair)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference: need equally many values, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    stats = mean_std(diffs)
    low = high = None
    if stats["std"] is not None:
        half = student_t_quantile(0.5 + level / 2.0, len(diffs) - 1) * stats["std"] / math.sqrt(len(diffs))
        low, high = stats["mean"] - half, stats["mean"] + half
    tag = f"ci{round(level * 100)}"
    return {"per_seed": diffs, "mean": stats["mean"], "std": stats["std"], "n": len(diffs),
            f"{tag}_low": low, f"{tag}_high": high}

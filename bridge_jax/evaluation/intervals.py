"""Confidence intervals for results over seeds (pure numpy/scipy).

For n values x_i with mean x̄ and sample standard deviation s (ddof 1), the two-sided
Student-t interval at level 1 − a is

    x̄ ± t_{1−a/2, n−1} · s / √n.

A *paired* comparison of two methods trained on the same seeds uses the per-seed
differences d_i = a_i − b_i in that formula, which removes the variation that the seed
causes in both; with every d_i equal the interval is that value alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean with its two-sided confidence interval over ``n`` values."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def t_interval(values, level: float = 0.95) -> Interval:
    """The Student-t interval of the mean of ``values`` (finite, n ≥ 2)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"a t interval needs at least 2 finite values, got {x.tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(x.mean())
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size))


def paired_difference(a, b, level: float = 0.95) -> Interval:
    """The t interval of the mean per-seed difference a_i − b_i (same seeds, same order)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    return t_interval(a - b, level)

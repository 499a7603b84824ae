"""Intervals and three-valued decisions: what every verdict is judged with.

A claim part is "holds", "does not hold" or "undecided (within noise)". The noise is
measured — the spread of independent baseline draws (shape against baselines) or the
difference a replica run makes (run comparisons) — and judged with stated assumptions:
normal-theory t bands from a few draws, independent units in a bootstrap.
"""

import numpy as np
import scipy.stats

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"


def prediction_band(values, level: float = 0.95, log: bool = False) -> tuple[float, float]:
    """Where one more draw from the distribution `values` were drawn from falls with
    probability `level` (Student t, unknown mean and variance): the noise band of a single
    measured value against n baseline draws. `log`: for a positive, right-skewed measure
    (a power-law exponent), the band of log(values), mapped back: never below zero."""
    x = np.asarray(values, dtype=np.float64)
    if log:
        lo, hi = prediction_band(np.log(x), level)
        return float(np.exp(lo)), float(np.exp(hi))
    n, mean, sd = len(x), x.mean(), x.std(ddof=1)
    half = scipy.stats.t.ppf(0.5 + level / 2, n - 1) * sd * np.sqrt(1 + 1 / n)
    return float(mean - half), float(mean + half)


def measure_band(values, measure: str, level: float = 0.95) -> tuple[float, float]:
    """The noise band of one shape measure over baseline draws, as every verdict, figure and
    table draws it: α (positive, right-skewed) on a log scale, fractions clipped to [0, 1]."""
    lo, hi = prediction_band(values, level, log=measure == "alpha")
    if measure == "near_zero":
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return float(lo), float(hi)


def band_resolution(values, level: float = 0.95, power: float = 0.8, log: bool = False, side: str = "above") -> float:
    """The smallest shift of a value from the draws' centre that lands beyond their
    prediction band (`prediction_band`) with probability `power`: the band itself is
    estimated from few draws, so this is wider than its half-width (about 1.3x for 5 draws
    at 95%). Computed for normal draws with the draws' own spread; in the measure's units,
    for a shift to `side` ("above" or "below": on a log scale the two differ)."""
    x = np.asarray(values, dtype=np.float64)
    x = np.log(x) if log else x
    n, m, sd = len(x), x.mean(), x.std(ddof=1)
    z = np.random.default_rng(0).standard_normal((4000, n))  # fixed: a property of n, not of the data
    t = scipy.stats.t.ppf(0.5 + level / 2, n - 1)
    hi = z.mean(axis=1) + t * z.std(axis=1, ddof=1) * np.sqrt(1 + 1 / n)
    q = float(np.quantile(hi, power))  # by symmetry, the same multiple below the centre
    if not log:
        return q * sd
    return float(np.exp(m + q * sd) - np.exp(m)) if side == "above" else float(np.exp(m) - np.exp(m - q * sd))


def welch_interval(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with its Welch confidence interval. -> (effect, low, high)"""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else 1.0
    half = scipy.stats.t.ppf(0.5 + level / 2, dof) * se
    d = float(a.mean() - b.mean())
    return d, d - float(half), d + float(half)


def bootstrap(units: int, statistic, n: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float, float]:
    """Percentile bootstrap over `units` independent units (resampled with replacement):
    statistic(idx) takes an index array into the units. -> (estimate, low, high, se)"""
    rng = np.random.default_rng(seed)
    est = float(statistic(np.arange(units)))
    reps = np.array([statistic(rng.integers(0, units, units)) for _ in range(n)], dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    return est, float(lo), float(hi), float(reps.std(ddof=1))


def above(value: float, band: tuple[float, float]) -> str:
    """A claim that `value` is larger than noise alone gives: above the band holds, below it
    does not hold, inside it is undecided."""
    lo, hi = band
    return HOLDS if value > hi else FAILS if value < lo else UNDECIDED


def below(value: float, band: tuple[float, float]) -> str:
    lo, hi = band
    return HOLDS if value < lo else FAILS if value > hi else UNDECIDED


def positive(low: float, high: float) -> str:
    """A claim that an effect is > 0, given its interval."""
    return HOLDS if low > 0 else FAILS if high < 0 else UNDECIDED


def negative(low: float, high: float) -> str:
    return HOLDS if high < 0 else FAILS if low > 0 else UNDECIDED


def detectable(se: float, level: float = 0.95, power: float = 0.8) -> float:
    """Smallest effect a two-sided test at `level` finds with probability `power`, for an
    estimate with standard error `se` (normal approximation): (z_level + z_power) * se."""
    return float((scipy.stats.norm.ppf(0.5 + level / 2) + scipy.stats.norm.ppf(power)) * se)

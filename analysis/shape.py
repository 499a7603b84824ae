"""Distribution-shape measures of a spectrum or matrix: plain functions of arrays."""

import numpy as np
import scipy.stats


def normalised(sv: np.ndarray) -> np.ndarray:
    """Singular values divided by their root mean square: compares shapes, not scales."""
    sv = np.asarray(sv, dtype=np.float64)
    return sv / np.sqrt(np.mean(sv**2))


def top_ratio(sv: np.ndarray, baseline_sv: np.ndarray) -> float:
    """sigma_max of the weights over sigma_max of a baseline: how much heavier the tail is."""
    return float(np.max(sv) / np.max(baseline_sv))


def near_zero_fraction(sv: np.ndarray, baseline_sv: np.ndarray, q: float = 0.1) -> float:
    """Fraction of singular values below the baseline's q-quantile (q itself for the baseline).

    The fitted baseline has the same entry variance, so the same sum of sigma^2 in
    expectation: a heavier tail must be paid for with more mass near zero."""
    return float(np.mean(np.asarray(sv) < np.quantile(baseline_sv, q)))


def ks_distance(sv: np.ndarray, baseline_sv: np.ndarray) -> float:
    """Two-sample KS statistic between scale-normalised spectra (0: same shape)."""
    return float(scipy.stats.ks_2samp(normalised(sv), normalised(baseline_sv)).statistic)


def w1_distance(sv: np.ndarray, baseline_sv: np.ndarray) -> float:
    """Wasserstein-1 distance between scale-normalised spectra."""
    return float(scipy.stats.wasserstein_distance(normalised(sv), normalised(baseline_sv)))


def excess_kurtosis(w: np.ndarray) -> float:
    """Excess kurtosis of the entries (0 for a Gaussian, 1.2 for a logistic)."""
    return float(scipy.stats.kurtosis(np.asarray(w, dtype=np.float64).ravel(), fisher=True))

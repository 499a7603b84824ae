"""Distribution-shape measures of a spectrum or matrix: plain functions of arrays.

Spectra are singular values sigma; heavy-tail fits use the eigenvalues lam = sigma^2 of
W^T W, as heavy-tailed self-regularization does (Martin & Mahoney).
"""

import contextlib
import io
import warnings

import numpy as np
import scipy.stats

from .spectra import mp_edges


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


def below_mp_edge(sv: np.ndarray, rows: int, cols: int, var: float) -> float:
    """Fraction of singular values below the Marchenko-Pastur lower edge (0 for square matrices)."""
    return float(np.mean(np.asarray(sv) < mp_edges(rows, cols, var)[0]))


def below_median_fraction(sv: np.ndarray, frac: float = 0.1) -> float:
    """Fraction of singular values below `frac` times the median singular value."""
    sv = np.asarray(sv)
    return float(np.mean(sv < frac * np.median(sv)))


def spikes(sv: np.ndarray, rows: int, cols: int, var: float) -> int:
    """Number of singular values above the Marchenko-Pastur upper edge."""
    return int(np.sum(np.asarray(sv) > mp_edges(rows, cols, var)[1]))


def ks_distance(sv: np.ndarray, baseline_sv: np.ndarray) -> float:
    """Two-sample KS statistic between scale-normalised spectra (0: same shape)."""
    return float(scipy.stats.ks_2samp(normalised(sv), normalised(baseline_sv)).statistic)


def w1_distance(sv: np.ndarray, baseline_sv: np.ndarray) -> float:
    """Wasserstein-1 distance between scale-normalised spectra."""
    return float(scipy.stats.wasserstein_distance(normalised(sv), normalised(baseline_sv)))


def powerlaw_alpha(sv: np.ndarray) -> dict:
    """Power-law fit p(lam) ~ lam^-alpha of the eigenvalues lam = sigma^2 above a KS-optimal
    xmin, by maximum likelihood (the `powerlaw` package, pinned to 1.5: 2.0 returns alpha ~3
    for tails whose maximum-likelihood alpha is 5). -> {alpha, xmin, ks, n_tail}"""
    import powerlaw

    lam = np.asarray(sv, dtype=np.float64) ** 2
    lam = lam[lam > 0]
    # powerlaw 1.5 warns about its internals and prints its xmin search unconditionally.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(lam, verbose=False)
    return {"alpha": float(fit.power_law.alpha), "xmin": float(fit.power_law.xmin),
            "ks": float(fit.power_law.D), "n_tail": int(np.sum(lam >= fit.power_law.xmin))}


def excess_kurtosis(w: np.ndarray) -> float:
    """Excess kurtosis of the entries (0 for a Gaussian, 1.2 for a logistic)."""
    return float(scipy.stats.kurtosis(np.asarray(w, dtype=np.float64).ravel(), fisher=True))


def stable_rank(sv: np.ndarray) -> float:
    """||W||_F^2 / ||W||_2^2: how many directions carry the matrix's energy."""
    sv = np.asarray(sv, dtype=np.float64)
    return float(np.sum(sv**2) / np.max(sv) ** 2)

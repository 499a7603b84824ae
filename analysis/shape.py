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
    for tails whose maximum-likelihood alpha is 5). xmin comes from `ks_optimal_xmin`, which
    makes powerlaw's own search in one array pass; powerlaw then fits at that xmin.
    -> {alpha, xmin, ks, n_tail}"""
    import powerlaw

    lam = np.asarray(sv, dtype=np.float64) ** 2
    lam = lam[lam > 0]
    xmin = ks_optimal_xmin(lam)
    if not np.isfinite(xmin):
        return {"alpha": np.nan, "xmin": np.nan, "ks": np.nan, "n_tail": 0}
    # powerlaw 1.5 warns about its internals and prints its xmin search unconditionally.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(lam, xmin=xmin, verbose=False)
    return {"alpha": float(fit.power_law.alpha), "xmin": float(fit.power_law.xmin),
            "ks": float(fit.power_law.D), "n_tail": int(np.sum(lam >= fit.power_law.xmin))}


def ks_optimal_xmin(x: np.ndarray, block: int = 256) -> float:
    """The xmin that powerlaw.Fit(x) picks (continuous power law, no xmax; Clauset et al.):
    over every distinct value but the largest, the one whose maximum-likelihood tail
    alpha = 1 + n / sum(log(x / xmin)) has the smallest KS distance between the tail's
    empirical CDF and 1 - (x / xmin)^(1 - alpha). powerlaw fits each candidate in Python
    (0.25-0.3 s for 2048 values); here each block of candidates is one array operation."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    x = x[x > 0]
    u, first = np.unique(x, return_index=True)  # distinct values and where each starts in x
    if len(u) < 2:
        return float("nan")
    n_all = len(x)
    f_emp = first / n_all  # empirical CDF just below each distinct value, as powerlaw's cdf()
    logx = np.log(x)
    suffix = np.concatenate([np.cumsum(logx[::-1])[::-1], [0.0]])  # suffix[i] = sum(logx[i:])
    cand = np.arange(len(u) - 1)
    n_tail = n_all - first[cand]
    alpha = 1 + n_tail / (suffix[first[cand]] - n_tail * np.log(u[cand]))
    logu = np.log(u)
    d = np.empty(len(cand))
    for lo in range(0, len(cand), block):
        i = cand[lo : lo + block]  # (c,) candidate rows against all distinct values j >= i
        j = np.arange(len(u))
        above = j[None, :] >= i[:, None]  # (c, m)
        gap = np.where(above, logu[None, :] - logu[i, None], 0.0)  # log(u_j / xmin), 0 below xmin
        theo = 1 - np.exp((1 - alpha[i, None]) * gap)
        emp = (f_emp[None, :] - f_emp[i, None]) / (1 - f_emp[i, None])
        diff = np.where(above, theo - emp, 0.0)
        d[lo : lo + block] = np.maximum(diff.max(axis=1), -diff.min(axis=1))
    return float(u[np.argmin(d)])


def excess_kurtosis(w) -> float:
    """Excess kurtosis of the entries (0 for a Gaussian, 1.2 for a logistic): the biased
    moment ratio m4 / m2^2 - 3 that scipy.stats.kurtosis returns, written with array methods
    so that a CuPy w stays on its device (a test holds it to scipy's value)."""
    d = w.ravel().astype("float64")
    d = d - d.mean()
    d2 = d * d
    return float((d2 * d2).mean() / d2.mean() ** 2 - 3.0)


def stable_rank(sv: np.ndarray) -> float:
    """||W||_F^2 / ||W||_2^2: how many directions carry the matrix's energy."""
    sv = np.asarray(sv, dtype=np.float64)
    return float(np.sum(sv**2) / np.max(sv) ** 2)

"""Singular values in batches, fitted random baselines, and the Marchenko-Pastur law.

Singular values come from the float64 Gram matrix of the smaller side and a symmetric
eigensolver: one batched call instead of one SVD per matrix. float32 Gram matrices are
not an option: squaring the spread of singular values loses every value below
~sqrt(eps32) * sigma_max ~ 3e-4 * sigma_max.
"""

import numpy as np
import scipy.stats

from .backend import to_numpy


def singular_values(w, xp=np):
    """w: (b, m, n) or (m, n) on `xp` -> (b, min(m, n)) or (min(m, n),), descending, float64."""
    single = w.ndim == 2
    w = xp.asarray(w)
    if single:
        w = w[None]
    w = w.astype(xp.float64, copy=False)
    m, n = w.shape[-2:]
    wt = xp.swapaxes(w, -1, -2)
    gram = w @ wt if m <= n else wt @ w  # (b, k, k), k = min(m, n)
    lam = xp.linalg.eigvalsh(gram)  # ascending
    sv = xp.sqrt(xp.clip(lam, 0.0, None))[:, ::-1]
    return sv[0] if single else sv


def fit_gaussian(w: np.ndarray) -> dict:
    return {"loc": float(w.mean()), "scale": float(w.std())}


def fit_logistic(w: np.ndarray, max_entries: int = 1_000_000, seed: int = 0) -> dict:
    """Maximum-likelihood logistic fit (scipy.stats) on at most `max_entries` entries."""
    x = np.asarray(w, dtype=np.float64).ravel()
    if x.size > max_entries:  # the fit is an optimisation; a large random subsample is enough
        x = np.random.default_rng(seed).choice(x, max_entries, replace=False)
    loc, scale = scipy.stats.logistic.fit(x)
    return {"loc": float(loc), "scale": float(scale)}


def sample_baseline(kind: str, params: dict, shape: tuple, seed: int) -> np.ndarray:
    """A matrix of `shape` with i.i.d. entries from the fitted distribution."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(params["loc"], params["scale"], size=shape)
    if kind == "logistic":
        return rng.logistic(params["loc"], params["scale"], size=shape)
    raise ValueError(f"unknown baseline {kind!r}; expected 'gaussian' or 'logistic'")


def with_baselines(w: np.ndarray, seed: int, xp=np) -> dict:
    """The study's comparison for one w: (m, n): its singular values and those of a Gaussian
    and a logistic matrix of the same shape, fitted to w's entries (one batched solve)."""
    fits = {"gaussian": fit_gaussian(w), "logistic": fit_logistic(w, seed=seed)}
    samples = [sample_baseline(k, fits[k], w.shape, seed) for k in ("gaussian", "logistic")]
    sv = to_numpy(singular_values(xp.asarray(np.stack([w, *samples])), xp))
    out = {"sv": sv[0], "gaussian": sv[1], "logistic": sv[2]}
    for kind, params in fits.items():
        out.update({f"{kind}_{p}": v for p, v in params.items()})
    return out


def mp_edges(m: int, n: int, var: float) -> tuple[float, float]:
    """Support [lo, hi] of the singular values of an (m, n) matrix of i.i.d. entries of variance var."""
    small, big = min(m, n), max(m, n)
    q = small / big
    return np.sqrt(var * big) * (1 - np.sqrt(q)), np.sqrt(var * big) * (1 + np.sqrt(q))


def mp_density(sigma, m: int, n: int, var: float) -> np.ndarray:
    """Density of singular values under Marchenko-Pastur for an (m, n) matrix, entry variance var.

    Eigenvalues lam of W W^T / N (N = larger side) follow MP with ratio q = min/max:
    p(lam) = sqrt((lam+ - lam)(lam - lam-)) / (2 pi var q lam); with sigma = sqrt(N lam),
    p(sigma) = p(lam) * 2 sigma / N.
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    small, big = min(m, n), max(m, n)
    q = small / big
    lo, hi = var * (1 - np.sqrt(q)) ** 2, var * (1 + np.sqrt(q)) ** 2
    lam = sigma**2 / big
    inside = (lam > lo) & (lam < hi)
    p_lam = np.zeros_like(lam)
    l_in = lam[inside]
    p_lam[inside] = np.sqrt((hi - l_in) * (l_in - lo)) / (2 * np.pi * var * q * l_in)
    return p_lam * 2 * sigma / big

"""Random baselines for a weight matrix, and the Marchenko-Pastur law they follow.

The study's baselines: fit a Gaussian and a logistic distribution to a matrix's entries,
sample a matrix of the same shape, take its singular values. Here each baseline is drawn
`draws` times, every draw from its own seed derived from (run, step, block, role, kind,
draw), so a baseline measure has a spread (the noise floor of shape claims) and no two
matrices share a draw. A third kind, the entries shuffled (WeightWatcher's "randomized
ESD"), keeps the entry distribution and destroys the structure.
"""

import hashlib

import numpy as np
import scipy.stats

from .backend import module_of, to_numpy
from .spectra import singular_values

KINDS = ("gaussian", "logistic", "shuffled")


def draw_seed(base: int, *ids) -> int:
    """A 63-bit seed from the settings' seed and the draw's identity (run, step, block,
    role, kind, draw): independent streams for every draw, reproducible from names alone."""
    text = "/".join(str(i) for i in (base, *ids))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def fit_gaussian(w) -> dict:
    """w: NumPy or CuPy array."""
    return {"loc": float(w.mean()), "scale": float(w.std())}


def excess_kurtosis(w) -> float:
    """Excess kurtosis of the entries (0 for a Gaussian, 1.2 for a logistic): the biased
    moment ratio m4 / m2^2 - 3 that scipy.stats.kurtosis returns, written with array methods
    so that a CuPy w stays on its device (a test holds it to scipy's value)."""
    d = w.ravel().astype("float64")
    d = d - d.mean()
    d2 = d * d
    return float((d2 * d2).mean() / d2.mean() ** 2 - 3.0)


def fit_logistic(w, max_entries: int = 200_000, seed: int = 0) -> dict:
    """Maximum-likelihood logistic fit (scipy.stats) on at most `max_entries` entries of w
    (NumPy or CuPy: the subsample is picked by index, so only it leaves the device)."""
    x = w.ravel()
    # The fit is an optimisation; a random subsample is enough (scale to ~0.2% at 2e5), and
    # below 1/50 of the entries NumPy draws it without permuting them all (16M: 5 ms, not 360).
    if x.size > max_entries:
        idx = np.random.default_rng(seed).choice(x.size, max_entries, replace=False)
        x = x[module_of(x).asarray(idx)]
    loc, scale = scipy.stats.logistic.fit(to_numpy(x).astype(np.float64))
    return {"loc": float(loc), "scale": float(scale)}


def sample(kind: str, params: dict, shape: tuple, seed: int, w=None, xp=np):
    """A float64 matrix of `shape` on `xp`, from a generator seeded with `seed`: i.i.d. entries
    from the fitted distribution, or (shuffled) w's own entries at random positions.
    On NumPy the draws equal Generator.normal / .logistic / .permutation's; CuPy's generator
    gives other (equally valid) draws."""
    rng = xp.random.default_rng(seed)
    if kind == "gaussian":
        return params["loc"] + params["scale"] * rng.standard_normal(shape)
    if kind == "logistic":  # inverse CDF, as NumPy's own logistic sampler does
        u = xp.maximum(rng.random(shape), np.finfo(np.float64).tiny)
        return params["loc"] + params["scale"] * xp.log(u / (1.0 - u))
    if kind == "shuffled":
        flat = xp.asarray(w).ravel()
        if xp is np:
            return rng.permutation(flat).reshape(shape)
        return flat[xp.argsort(rng.random(flat.size))].reshape(shape)  # a uniform random permutation
    raise ValueError(f"unknown baseline {kind!r}; expected one of {KINDS}")


def fit_scales(w: np.ndarray) -> dict:
    """Log-normal fits to w's row and column norms (w: (out, in)): the parameters of the
    non-product control `sample_scaled`."""
    rows, cols = np.log(np.linalg.norm(w, axis=1)), np.log(np.linalg.norm(w, axis=0))
    return {"row_mu": float(rows.mean()), "row_sigma": float(rows.std()),
            "col_mu": float(cols.mean()), "col_sigma": float(cols.std())}


def sample_scaled(params: dict, shape: tuple, seed: int) -> np.ndarray:
    """diag(r) G diag(c): a Gaussian matrix G with log-normal row and column scales r, c.
    Uneven rows and columns, no product of dense random matrices: the control that a
    product-of-Gaussians explanation must beat. (out, in) float64."""
    rng = np.random.default_rng(seed)
    r = np.exp(rng.normal(params["row_mu"], params["row_sigma"], shape[0]))
    c = np.exp(rng.normal(params["col_mu"], params["col_sigma"], shape[1]))
    return r[:, None] * rng.standard_normal(shape) * c[None, :]


def with_draws(ws, ids: list[tuple], base_seed: int, draws: int, xp=np, budget_bytes: int | None = None) -> list[dict]:
    """For each matrix of ws: (b, out, in) (NumPy or CuPy, any float dtype), its singular
    values and those of `draws` draws of each baseline kind, as many matrices at once as
    `budget_bytes` (default: backend.memory_budget) holds. ids[i] names matrix i (e.g.
    (run, step, block, role)) and seeds its draws, so a record never depends on its batch.
    -> [{sv: (k,), gaussian: (draws, k), logistic: ..., shuffled: ..., gaussian_loc, ...,
    kurtosis}] on the host. Kurtosis of the entries is taken here, while w is on the device."""
    from .backend import memory_budget

    b, m, n = ws.shape
    k = min(m, n)
    per = (1 + len(KINDS) * draws) * 8 * (m * n + 3 * k * k)  # a matrix, its draws, Grams, workspace
    chunk = max(1, (memory_budget(xp) if budget_bytes is None else budget_bytes) // per)
    out = []
    for lo in range(0, b, chunk):
        part = xp.asarray(ws[lo : lo + chunk], dtype=xp.float64)
        fits = [{"gaussian": fit_gaussian(w), "logistic": fit_logistic(w, seed=draw_seed(base_seed, *ids[lo + i]))}
                for i, w in enumerate(part)]
        stack = xp.stack([x for i, (w, f) in enumerate(zip(part, fits))
                          for x in (w, *(sample(kd, f.get(kd, {}), w.shape, draw_seed(base_seed, *ids[lo + i], kd, d), w, xp)
                                         for kd in KINDS for d in range(draws)))])
        sv = to_numpy(singular_values(stack, xp)).reshape(len(part), 1 + len(KINDS) * draws, k)
        for w, f, s in zip(part, fits, sv):
            rec = {"sv": s[0], "kurtosis": excess_kurtosis(w)}
            for i, kd in enumerate(KINDS):
                rec[kd] = s[1 + i * draws : 1 + (i + 1) * draws]
            for kind, params in f.items():
                rec.update({f"{kind}_{p}": v for p, v in params.items()})
            out.append(rec)
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


def mp_cdf(sigma, m: int, n: int, var: float, grid: int = 4096) -> np.ndarray:
    """Marchenko-Pastur CDF of singular values (numerical integral of mp_density).

    For square matrices the density of sigma is the quarter-circle law, finite at 0."""
    lo, hi = mp_edges(m, n, var)
    x = np.linspace(lo, hi, grid)
    # The sigma-density has integrable square-root ends; a fine trapezoid grid is enough.
    dens = mp_density(x, m, n, var)
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(x))])
    cdf /= cdf[-1]
    return np.interp(np.asarray(sigma, dtype=np.float64), x, cdf, left=0.0, right=1.0)

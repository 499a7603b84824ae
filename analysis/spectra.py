"""Singular values in batches, fitted random baselines, and the Marchenko-Pastur law.

Singular values come from the float64 Gram matrix of the smaller side and a symmetric
eigensolver (`eigvalsh`, by the fastest measured route for NumPy or CuPy), then values
below REFINE_BELOW * sigma_max are recomputed without squaring. float32 Gram matrices are
not an option: squaring the spread of singular values loses every value below
~sqrt(eps32) * sigma_max ~ 3e-4 * sigma_max. Baselines are sampled on the same device.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.stats

from .backend import to_numpy


REFINE_BELOW = 1e-6  # relative to sigma_max; see _refine_small

# How a stack of Gram matrices goes through the eigensolver (benchmarks/spectra.py measures
# each): "batched" one stacked call; "loop" one call per matrix; "threads" one call per
# matrix from EIGH_THREADS threads (NumPy: one BLAS thread each; CuPy: one CUDA stream each,
# since one n=2048 solve is a chain of small kernels that leaves most of the GPU idle; the
# gain is ~10%, so the solves mostly serialise anyway); "torch" torch.linalg.eigvalsh via DLPack.
# NumPy, 2 cores, n=2048: batched 0.335 s a matrix, threads 0.31-0.34 (the tridiagonal
# reduction is memory-bound: two threads share the bandwidth), torch 0.95.
# H200 (CuPy 14.2, CUDA 13), n=2048: batched 104-115 ms a matrix (CuPy's batched call is Jacobi,
# syevj), loop 24.5 (syevd), threads-4..16 22.1-22.5, torch 24.6, torch from 4-16 threads on
# their own streams 21.7-22.0 (not kept: torch's lazy cuSOLVER set-up is not thread-safe on
# first use). Sending a share of each batch to the host's 16 cores (one BLAS thread each) was
# slower: 57-61 ms a matrix, since one host solve takes ~1.8 s and the batch waits for it.
EIGH_ROUTES = ("batched", "loop", "threads", "torch")
EIGH_ROUTE = {"numpy": "batched", "cupy": "threads"}
EIGH_THREADS = {"numpy": 2, "cupy": 8}


def singular_values(w, xp=np, refine: bool = True):
    """w: (b, m, n) or (m, n) on `xp` -> (b, min(m, n)) or (min(m, n),), descending, float64."""
    single = w.ndim == 2
    w = xp.asarray(w)
    if single:
        w = w[None]
    w = w.astype(xp.float64, copy=False)
    m, n = w.shape[-2:]
    wt = xp.swapaxes(w, -1, -2)
    gram = w @ wt if m <= n else wt @ w  # (b, k, k), k = min(m, n)
    lam = eigvalsh(gram, xp)  # ascending
    sv = xp.sqrt(xp.maximum(lam, 0.0))[:, ::-1]
    if refine:
        sv = _refine_small(w, gram, sv, xp)
    return sv[0] if single else sv


def eigvalsh(gram, xp=np, route: str | None = None):
    """gram: (b, k, k) symmetric, float64 -> (b, k) eigenvalues, ascending, by `route`
    (default EIGH_ROUTE for the module)."""
    kind = "numpy" if xp is np else "cupy"
    route = route or EIGH_ROUTE[kind]
    if route == "batched" or len(gram) == 1:
        return xp.linalg.eigvalsh(gram)
    if route == "loop":
        return xp.stack([xp.linalg.eigvalsh(g) for g in gram])
    if route == "threads":
        return _eigvalsh_threads(gram, xp, EIGH_THREADS[kind])
    if route == "torch":
        import torch

        return xp.from_dlpack(torch.linalg.eigvalsh(torch.from_dlpack(xp.ascontiguousarray(gram))))
    raise ValueError(f"eigensolver route {route!r}: expected one of {EIGH_ROUTES}")


def _eigvalsh_threads(gram, xp, workers: int):
    out = xp.empty(gram.shape[:2], dtype=gram.dtype)
    if xp is np:
        from threadpoolctl import threadpool_limits

        def one(i):
            out[i] = np.linalg.eigvalsh(gram[i])

        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(gram))))
        return out

    ready = xp.cuda.get_current_stream().record()  # the Gram product, on whichever stream made it

    def one(i):
        stream = xp.cuda.Stream(non_blocking=True)
        stream.wait_event(ready)
        with stream:
            out[i] = xp.linalg.eigvalsh(gram[i])
        stream.synchronize()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(gram))))
    return out


def singular_values_chunked(w, xp=np, budget_bytes: int | None = None):
    """singular_values over a large stack w: (b, m, n), in chunks that fit `budget_bytes`
    (default: backend.memory_budget). Each chunk holds its float64 copy, the Gram matrix
    and the eigensolver's workspace: about 8 * (m*n + 3*k*k) bytes a matrix."""
    from .backend import memory_budget

    b, m, n = w.shape
    k = min(m, n)
    budget = memory_budget(xp) if budget_bytes is None else budget_bytes
    per = 8 * (m * n + 3 * k * k)
    chunk = max(1, budget // per)
    return xp.concatenate([singular_values(w[i : i + chunk], xp) for i in range(0, b, chunk)])


def _refine_small(w, gram, sv, xp):
    """Recompute singular values below REFINE_BELOW * sigma_max without squaring them.

    The Gram route's eigenvalues carry an absolute error of c * eps * sigma_max^2, so a
    singular value sigma is off by ~c * eps * sigma_max^2 / sigma. Measured for the small
    values: c <= 0.08 (spreads 1e6-1e12, n <= 500), ~0.03 (2048 x 2048 Gaussian and t(3)),
    so above 1e-6 sigma_max the error stays below ~2e-11 sigma_max, 50x inside the 1e-9 bar
    (a test checks values just above the cut); near zero it is useless (~1e-8 sigma_max for a
    rank-deficient matrix). The cut was 1e-4 before: a square Gaussian matrix of side 2048
    then took this path 4 times in 10 (its smallest value is ~1e-4 sigma_max), now ~1 in 250. For the c values below, find the Gram matrix's small
    eigenspace by subspace iteration with (gram + s I)^-1 (one Cholesky factorisation; large
    directions shrink by ~s / lambda per pass), project w onto it, b = w v: (max side, c + p),
    and take b's singular values directly: b's entries are small, so their rounding error is
    relative to the small values, not to sigma_max. The c smallest of b's values are the
    answer (Courant-Fischer: the extra p columns only absorb directions near the cut).
    """
    small = sv < REFINE_BELOW * sv[:, :1]  # (b, k)
    counts = small.sum(axis=1)
    todo = [i for i, c in enumerate(counts.tolist()) if c > 0]
    if not todo:
        return sv
    sv = sv.copy()
    m, n = w.shape[-2:]
    k = min(m, n)
    for i in todo:
        c = int(counts[i])
        width = min(k, 2 * c + 8)
        shift = (REFINE_BELOW * float(sv[i, 0])) ** 2 / 10
        chol = xp.linalg.cholesky(gram[i] + shift * xp.eye(k))  # lower: gram + s I = L L^T
        # Seeded the same for every matrix, so a result does not depend on its batch.
        x = xp.asarray(np.random.default_rng(0).standard_normal((k, width)))
        for _ in range(3):
            x = _solve_lower_t(chol, _solve_lower(chol, x, xp), xp)  # (gram + s I)^-1 x
            x, _ = xp.linalg.qr(x)
        b = (w[i].T if m <= n else w[i]) @ x  # (max side, width)
        sv[i, -c:] = xp.linalg.svd(b, compute_uv=False)[-c:]
    return sv


def _solve_lower(chol, x, xp):
    if xp is np:
        import scipy.linalg

        return scipy.linalg.solve_triangular(chol, x, lower=True)
    import cupyx.scipy.linalg

    return cupyx.scipy.linalg.solve_triangular(chol, x, lower=True)


def _solve_lower_t(chol, x, xp):
    if xp is np:
        import scipy.linalg

        return scipy.linalg.solve_triangular(chol, x, lower=True, trans="T")
    import cupyx.scipy.linalg

    return cupyx.scipy.linalg.solve_triangular(chol, x, lower=True, trans="T")


def fit_gaussian(w) -> dict:
    """w: NumPy or CuPy array."""
    return {"loc": float(w.mean()), "scale": float(w.std())}


def fit_logistic(w, max_entries: int = 200_000, seed: int = 0) -> dict:
    """Maximum-likelihood logistic fit (scipy.stats) on at most `max_entries` entries of w
    (NumPy or CuPy: the subsample is picked by index, so only it leaves the device)."""
    x = w.ravel()
    # The fit is an optimisation; a random subsample is enough (scale to ~0.2% at 2e5), and
    # below 1/50 of the entries NumPy draws it without permuting them all (16M: 5 ms, not 360).
    if x.size > max_entries:
        idx = np.random.default_rng(seed).choice(x.size, max_entries, replace=False)
        x = x[idx] if isinstance(x, np.ndarray) else x[_like(x, idx)]
    loc, scale = scipy.stats.logistic.fit(to_numpy(x).astype(np.float64))
    return {"loc": float(loc), "scale": float(scale)}


def _like(x, a):
    """a (NumPy) on x's array module."""
    import cupy

    return cupy.asarray(a) if isinstance(x, cupy.ndarray) else a


BASELINES = ("gaussian", "logistic", "shuffled")


def sample_baseline(kind: str, params: dict, shape: tuple, seed: int, w=None, xp=np):
    """A float64 matrix of `shape` on `xp`, from a generator seeded with `seed`: i.i.d. entries
    from the fitted distribution, or (shuffled) w's own entries at random positions
    (WeightWatcher's "randomized ESD"). On NumPy the draws equal Generator.normal / .logistic /
    .permutation's; CuPy's generator gives other (equally valid) draws."""
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
    raise ValueError(f"unknown baseline {kind!r}; expected one of {BASELINES}")


def with_baselines(w, seed: int, xp=np) -> dict:
    """The study's comparison for one w: (m, n): its singular values and those of a Gaussian
    and a logistic matrix of the same shape fitted to w's entries, and of w shuffled, all
    sampled on `xp`'s device (one batched solve). -> {sv, gaussian, logistic, shuffled,
    gaussian_loc, ..., kurtosis}; spectra on the host."""
    return with_baselines_batch(xp.asarray(w)[None], seed, xp)[0]


def with_baselines_batch(ws, seed: int, xp=np, budget_bytes: int | None = None) -> list[dict]:
    """with_baselines for each of ws: (b, m, n) (NumPy or CuPy, any float dtype), solving as
    many matrices and their baselines at once as `budget_bytes` (default: memory_budget)
    holds. Each record is what with_baselines(ws[i], seed) returns, whatever the batch."""
    from .backend import memory_budget
    from .shape import excess_kurtosis  # shape imports this module at its top

    b, m, n = ws.shape
    k = min(m, n)
    per = (1 + len(BASELINES)) * 8 * (m * n + 3 * k * k)  # a matrix, its baselines, Grams, workspace
    chunk = max(1, (memory_budget(xp) if budget_bytes is None else budget_bytes) // per)
    out = []
    for lo in range(0, b, chunk):
        part = xp.asarray(ws[lo : lo + chunk], dtype=xp.float64)
        fits = [{"gaussian": fit_gaussian(w), "logistic": fit_logistic(w, seed=seed)} for w in part]
        stack = xp.stack([x for w, f in zip(part, fits)
                          for x in (w, *(sample_baseline(kd, f.get(kd, {}), w.shape, seed, w, xp) for kd in BASELINES))])
        sv = to_numpy(singular_values(stack, xp)).reshape(len(part), 1 + len(BASELINES), k)
        for w, f, s in zip(part, fits, sv):
            # Entry statistics here, while the matrix is on the device: kurtosis of its entries.
            rec = {"sv": s[0], **{kd: s[i + 1] for i, kd in enumerate(BASELINES)}, "kurtosis": excess_kurtosis(w)}
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

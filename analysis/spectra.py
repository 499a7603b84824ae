"""Singular values of stacks of matrices: the linear algebra under every spectrum.

Singular values come from the float64 Gram matrix of the smaller side and a symmetric
eigensolver (`eigvalsh`, by the fastest measured route for NumPy or CuPy), then values
below REFINE_BELOW * sigma_max are recomputed without squaring. float32 Gram matrices are
not an option: squaring the spread of singular values loses every value below
~sqrt(eps32) * sigma_max ~ 3e-4 * sigma_max.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np



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

"""Singular values of stacks of matrices: the linear algebra under every spectrum.

Singular values come from the float64 Gram matrix of the smaller side and a symmetric
eigensolver (`eigvalsh`, by the fastest measured route for NumPy or CuPy), then values
below REFINE_BELOW * sigma_max are recomputed without squaring. float32 Gram matrices are
not an option: squaring the spread of singular values loses every value below
~sqrt(eps32) * sigma_max ~ 3e-4 * sigma_max.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from .errors import AnalysisError

REFINE_BELOW = 1e-6  # relative to sigma_max; see _refine_small

# How a stack of Gram matrices goes through the eigensolver (benchmarks/spectra.py measures
# each), and the cuSOLVER routine each reaches on CuPy (read in CuPy's cupy/linalg/_eigenvalue.py
# and cupyx/cusolver.py, and torch's BatchLinearAlgebraLib.cpp):
#   "batched"   one stacked xp.linalg.eigvalsh call. NumPy: LAPACK dsyevd per matrix (numpy's
#               gufunc loop). CuPy: a 3-D input goes to cupyx.cusolver.syevj -> cusolverDnDsyevjBatched,
#               the batched Jacobi routine (the issue and torch's source restrict it to n <= 32;
#               CuPy sends any n): at n = 2048 it is 4x slower than syevd and 460x less accurate.
#   "loop"      one xp.linalg.eigvalsh call per 2-D matrix. CuPy: cusolverDnXsyevd (jobz NOVECTOR).
#   "threads"   the same 2-D calls from EIGH_THREADS threads (NumPy: one BLAS thread each; CuPy:
#               one CUDA stream each, since one n=2048 syevd is a chain of small kernels that
#               leaves most of the GPU idle; the gain is ~10%, so the solves mostly serialise).
#   "torch"     torch.linalg.eigvalsh via DLPack. CUDA, float64, n > 32: cusolverDn<t>syevd per
#               matrix (syevjBatched only for n <= 32, syevj only for float32 32..512).
#   "mixed"     float32 eigh (values and vectors; CuPy: Xsyevd per 2-D matrix) refined in float64
#               by Ogita-Aishima steps (GEMMs) and a float64 Rayleigh-Ritz solve inside clusters.
#   "two-stage" dense -> band of width TWO_STAGE_BAND by blocked Householder (QR of each panel:
#               CuPy geqrf; the trailing update is GEMMs), then band -> eigenvalues on the host
#               (LAPACK dsbevd: band -> tridiagonal, then sterf) from EIGH_THREADS threads.
#   "xsyev"     cusolverDnXsyevBatched (CUDA >= 12.6) through ctypes on the libcusolver CuPy
#               loaded; NumPy twin: LAPACK dsyevd per matrix (the same algorithm).
# NumPy, 2 cores, n=2048: batched 0.335 s a matrix, threads 0.31-0.34 (the tridiagonal
# reduction is memory-bound: two threads share the bandwidth), torch 0.95.
# H200 (CuPy 14.2, CUDA 13), n=2048: batched 104-115 ms a matrix (syevjBatched), loop 24.5
# (Xsyevd), threads-4..16 22.1-22.5, torch 24.6, torch from 4-16 threads on
# their own streams 21.7-22.0 (not kept: torch's lazy cuSOLVER set-up is not thread-safe on
# first use). Sending a share of each batch to the host's 16 cores (one BLAS thread each) was
# slower: 57-61 ms a matrix, since one host solve takes ~1.8 s and the batch waits for it.
# "mixed", "two-stage" and "xsyev" are candidates from issue 16, not yet timed on a GPU.
EIGH_ROUTES = ("batched", "loop", "threads", "torch", "mixed", "two-stage", "xsyev")
EIGH_ROUTE = {"numpy": "batched", "cupy": "threads"}
EIGH_THREADS = {"numpy": 2, "cupy": 8}
TWO_STAGE_BAND = 32  # band width of the two-stage route; the host's band solve grows with it
MIXED_TOL = 4 * np.finfo(np.float64).eps  # accepted error of a refined eigenvalue, relative to the largest
MIXED_SAFE = 1e3  # a pair is refined only where its gap exceeds this times its coupling |s_ij|
MIXED_STEPS = 2  # Ogita-Aishima steps: the first fixes the coupling between clusters, the second resolves them


class RouteUnavailable(AnalysisError, RuntimeError):
    """An eigensolver route this machine's libraries do not have (e.g. Xsyev without CUDA 12.6)."""


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
    if route == "batched":
        return xp.linalg.eigvalsh(gram)
    if route == "loop" or (route == "threads" and len(gram) == 1):  # a 2-D call: Xsyevd on CuPy
        return xp.stack([xp.linalg.eigvalsh(g) for g in gram])
    if route == "threads":
        return _eigvalsh_threads(gram, xp, EIGH_THREADS[kind])
    if route == "torch":
        import torch

        return xp.from_dlpack(torch.linalg.eigvalsh(torch.from_dlpack(xp.ascontiguousarray(gram))))
    if route == "mixed":
        return _eigvalsh_mixed(gram, xp)
    if route == "two-stage":
        return _eigvalsh_two_stage(gram, xp, TWO_STAGE_BAND, EIGH_THREADS[kind])
    if route == "xsyev":
        return np.linalg.eigvalsh(gram) if xp is np else _eigvalsh_xsyev_batched(gram, xp)
    raise ValueError(f"eigensolver route {route!r}: expected one of {EIGH_ROUTES}")


def _eigvalsh_threads(gram, xp, workers: int):
    out = xp.empty(gram.shape[:2], dtype=gram.dtype)
    if xp is np:

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


def _eigvalsh_mixed(gram, xp):
    """Eigenvalues to float64 accuracy from a float32 eigendecomposition (Ogita & Aishima 2018,
    "Iterative refinement for symmetric eigenvalue decomposition", Japan J. Indust. Appl. Math.).

    gram: (b, k, k). Each step costs ~8 k^3 float64 flops in GEMMs. Eigenvalues closer than the
    step's error bound delta form a cluster that a step cannot separate; after the last step each
    cluster's eigenvalues come from a float64 solve of its block of X^T A X (Rayleigh-Ritz), so
    the result is as accurate as the float64 solvers even for repeated or tiny eigenvalues (a
    rank-deficient Gram matrix makes one large cluster near 0 and costs one solve of that size).
    """
    b, k, _ = gram.shape
    if xp is np:
        _, x = np.linalg.eigh(gram.astype(np.float32))
    else:  # CuPy's 3-D eigh would be syevjBatched: solve 2-D matrices (Xsyevd)
        x = xp.stack([xp.linalg.eigh(g.astype(xp.float32))[1] for g in gram])
    x = x.astype(xp.float64)
    eye = xp.eye(k)
    for step in range(MIXED_STEPS + 1):
        xt = xp.swapaxes(x, -1, -2)
        r = eye - xt @ x  # (b, k, k): loss of orthogonality
        s = xt @ (gram @ x)  # (b, k, k): X^T A X
        lam = xp.diagonal(s, axis1=1, axis2=2) / (1 - xp.diagonal(r, axis1=1, axis2=2))  # (b, k)
        off = s - lam[:, :, None] * eye
        if step == MIXED_STEPS:
            break
        norm_a = xp.abs(lam).max(axis=1)
        # delta bounds the eigenvalues' error (Frobenius norms bound the 2-norms)
        delta = 2 * (xp.linalg.norm(off, axis=(1, 2)) + norm_a * xp.linalg.norm(r, axis=(1, 2)))
        diff = lam[:, None, :] - lam[:, :, None]  # lam_j - lam_i
        # A pair is separated only where delta says so and the Newton correction s_ij / gap is
        # small: float32 vectors of eigenvalues near eps32 * lam_max are too rough for larger steps,
        # which then diverge (measured: X^T X drifted to 6e-5 from I on tests' repeated values).
        far = (xp.abs(diff) > delta[:, None, None]) & (xp.abs(diff) > MIXED_SAFE * xp.abs(s))
        e = xp.where(far, (s + lam[:, None, :] * r) / xp.where(far, diff, 1.0), r / 2)
        x = x + x @ e
    # A Rayleigh quotient with residual rho_i (row i of `off`) is within rho_i^2 / gap of its
    # eigenvalue. Eigenvalues closer than rho_i^2 / TOL to another cannot be trusted alone; they
    # and their neighbours form a cluster, solved in float64 on its orthonormalised vectors
    # (Rayleigh-Ritz: the eigenvalues of Q^T A Q).
    lam_h, rho_h = _host(lam, xp), _host(xp.linalg.norm(off, axis=2), xp)
    out = np.empty((b, k))
    for i in range(b):
        order = np.argsort(lam_h[i])
        vals = lam_h[i][order]
        reach = rho_h[i][order] ** 2 / (MIXED_TOL * np.abs(vals).max())
        hi = np.maximum.accumulate(vals + reach)
        lo = np.minimum.accumulate((vals - reach)[::-1])[::-1]
        cut = np.flatnonzero((hi[:-1] < vals[1:]) & (vals[:-1] < lo[1:])) + 1
        parts = []
        for run in np.split(np.arange(k), cut):
            if len(run) == 1:
                parts.append(vals[run])
            else:
                q, _ = xp.linalg.qr(x[i][:, xp.asarray(order[run])])  # (k, c), orthonormal
                parts.append(_host(xp.linalg.eigvalsh(q.T @ (gram[i] @ q)), xp))
        out[i] = np.sort(np.concatenate(parts))
    return xp.asarray(out)


def _host(a, xp):
    return a if xp is np else a.get()


def _eigvalsh_two_stage(gram, xp, band: int, workers: int):
    """Eigenvalues through a band matrix: gram (b, k, k) -> (b, k), ascending.

    Stage 1 (on xp) takes each panel of `band` columns, QR-factors the part below the band
    (geqrf) and applies the reflectors to the trailing matrix from both sides as GEMMs
    (A - V W^T - W V^T, the compact-WY update LAPACK's sytrd_sy2sb uses), ~4/3 k^3 flops mostly
    in GEMM. Stage 2, on the host, is LAPACK dsbevd (band -> tridiagonal -> sterf), O(k^2 band)
    flops, one matrix per thread with one BLAS thread each.
    """
    import scipy.linalg

    bands = [_host(_to_band(g, band, xp), xp) for g in gram]  # (band + 1, k) lower band storage each

    def one(lb):
        return scipy.linalg.eig_banded(lb, lower=True, eigvals_only=True, check_finite=False)

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        lam = list(pool.map(one, bands))
    return xp.asarray(np.stack(lam))


def _to_band(g, band: int, xp):
    """g: (k, k) symmetric -> (band + 1, k): row d holds diagonal -d of an orthogonally similar
    band matrix (LAPACK's lower band storage, zero-padded at the end)."""
    a = g.copy()
    k = len(a)
    for j in range(0, k - band - 1, band):
        panel = a[j + band:, j:j + band]  # (m, band), m = k - j - band
        h, tau = xp.linalg.qr(panel, mode="raw")  # geqrf; h is returned transposed, as NumPy does
        h = h.T
        nb = tau.shape[0]
        r = xp.triu(h[:nb])  # (nb, band)
        v = xp.tril(h[:, :nb], -1) + xp.eye(*h[:, :nb].shape)
        live = tau != 0  # tau = 0 is an identity reflector: drop its vector
        v = v * live[None, :]
        # compact WY: Q = I - V T V^T with T^-1 = strict_upper(V^T V) + diag(1 / tau)
        t_inv = xp.triu(v.T @ v, 1) + xp.diag(1 / xp.where(live, tau, 1.0))
        t = xp.linalg.inv(t_inv)
        trail = a[j + band:, j + band:]
        y = trail @ (v @ t)  # (m, nb)
        w = y - 0.5 * v @ (t.T @ (v.T @ y))
        trail -= v @ w.T + w @ v.T
        a[j + band:, j:j + band] = 0
        a[j + band:j + band + nb, j:j + band] = r
        a[j:j + band, j + band:] = a[j + band:, j:j + band].T
    return xp.stack([xp.concatenate([xp.diagonal(a, -d), xp.zeros(min(d, k))]) for d in range(band + 1)])


# cuSOLVER's enums (cusolver_common.h, cublas_api.h, library_types.h)
_EIG_MODE_NOVECTOR, _FILL_MODE_LOWER, _CUDA_R_64F = 0, 0, 1
_INT32_MAX = 2**31 - 1


def _libcusolver():
    """The libcusolver CuPy loaded (found in /proc/self/maps), through ctypes, or RouteUnavailable
    if it has no cusolverDnXsyevBatched (added in CUDA 12.6). nvmath-python's low-level bindings
    expose the same routine (nvmath.bindings.cusolverDn.xsyev_batched, in its current docs), but
    a device machine may not have nvmath-python; ctypes needs nothing beyond CuPy."""
    import ctypes

    import cupy
    from cupy_backends.cuda.libs import cusolver

    cusolver.getVersion()  # makes sure the library is loaded
    paths = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libcusolver.so" in line})
    if not paths:
        raise RouteUnavailable(f"eigensolver route 'xsyev': no libcusolver.so loaded by CuPy {cupy.__version__}")
    lib = ctypes.CDLL(paths[0])
    if not hasattr(lib, "cusolverDnXsyevBatched"):
        raise RouteUnavailable(f"eigensolver route 'xsyev': {paths[0]} has no cusolverDnXsyevBatched (needs CUDA >= 12.6)")
    c = ctypes
    lib.cusolverDnXsyevBatched_bufferSize.argtypes = [c.c_void_p, c.c_void_p, c.c_int, c.c_int, c.c_int64, c.c_int,
                                                      c.c_void_p, c.c_int64, c.c_int, c.c_void_p, c.c_int,
                                                      c.POINTER(c.c_size_t), c.POINTER(c.c_size_t), c.c_int64]
    lib.cusolverDnXsyevBatched.argtypes = [c.c_void_p, c.c_void_p, c.c_int, c.c_int, c.c_int64, c.c_int, c.c_void_p,
                                           c.c_int64, c.c_int, c.c_void_p, c.c_int, c.c_void_p, c.c_size_t,
                                           c.c_void_p, c.c_size_t, c.c_void_p, c.c_int64]
    lib.cusolverDnCreateParams.argtypes = [c.POINTER(c.c_void_p)]
    lib.cusolverDnDestroyParams.argtypes = [c.c_void_p]
    return lib


def _eigvalsh_xsyev_batched(gram, xp):
    """gram: (b, k, k) on CuPy -> (b, k) by cusolverDnXsyevBatched, in batches that keep
    k * k * batch <= INT32_MAX (the routine's documented limit)."""
    import ctypes

    from cupy_backends.cuda.libs import cusolver

    lib = _libcusolver()
    b, k, _ = gram.shape
    handle = xp.cuda.device.get_cusolver_handle()
    cusolver.setStream(handle, xp.cuda.get_current_stream().ptr)
    params = ctypes.c_void_p()
    _check_status(lib.cusolverDnCreateParams(ctypes.byref(params)), "cusolverDnCreateParams")
    out = xp.empty((b, k))
    try:
        step = max(1, _INT32_MAX // (k * k))
        for i in range(0, b, step):
            a = xp.array(gram[i:i + step], order="C", copy=True)  # symmetric: row-major is column-major
            n = len(a)
            w = xp.empty((n, k))
            info = xp.zeros(n, dtype=xp.int32)
            dev, host = ctypes.c_size_t(), ctypes.c_size_t()
            args = (handle, params, _EIG_MODE_NOVECTOR, _FILL_MODE_LOWER, k, _CUDA_R_64F, a.data.ptr, k,
                    _CUDA_R_64F, w.data.ptr, _CUDA_R_64F)
            _check_status(lib.cusolverDnXsyevBatched_bufferSize(*args, ctypes.byref(dev), ctypes.byref(host), n),
                          "cusolverDnXsyevBatched_bufferSize")
            dev_buf = xp.empty(max(dev.value, 1), dtype=xp.uint8)
            host_buf = np.empty(max(host.value, 1), dtype=np.uint8)
            _check_status(lib.cusolverDnXsyevBatched(*args, dev_buf.data.ptr, dev.value, host_buf.ctypes.data,
                                                     host.value, info.data.ptr, n), "cusolverDnXsyevBatched")
            bad = int((info != 0).sum())
            if bad:
                raise RuntimeError(f"cusolverDnXsyevBatched: {bad} of {n} matrices did not converge (info != 0)")
            out[i:i + n] = w
    finally:
        lib.cusolverDnDestroyParams(params)
    return out


def _check_status(status: int, what: str):
    if status != 0:
        raise RuntimeError(f"{what} returned cusolverStatus {status}")


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


_BLAS = {"users": 0, "limit": None, "lock": threading.Lock()}


@contextmanager
def one_blas_thread():
    """BLAS limited to one thread while any solve in this process runs (extract.solve): a
    record's bits then do not depend on the cores of whoever solves it. One process-wide,
    reference-counted limit, set by the first user and restored by the last, so threads
    solving side by side share it. Set it from the main thread: OpenBLAS (pthreads) was seen
    to ignore a limit set from a fresh thread once other threads had run BLAS calls, so a
    threads-only cluster holds it from the thread that starts it (cluster.client). Checked:
    a BLAS reporting another count is an error, not silently different bits."""
    with _BLAS["lock"]:
        if _BLAS["users"] == 0:
            _BLAS["limit"] = threadpool_limits(1, user_api="blas")
        _BLAS["users"] += 1
    try:
        busy = [f"{x['internal_api']} ({x['filepath']}): {x['num_threads']}" for x in threadpool_info()
                if x["user_api"] == "blas" and x["num_threads"] != 1]
        if busy:
            raise RuntimeError(f"could not limit BLAS to one thread for the spectra ({'; '.join(busy)} threads); "
                               "expected 1, which keeps every record's bits independent of where it is solved")
        yield
    finally:
        with _BLAS["lock"]:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                _BLAS["limit"].restore_original_limits()

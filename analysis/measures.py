"""Distribution-shape measures of a spectrum or matrix: plain functions of arrays.

Spectra are singular values sigma; heavy-tail fits use the eigenvalues lam = sigma^2 of
W^T W, as heavy-tailed self-regularization does (Martin & Mahoney).
"""

import contextlib
import io
import warnings

import numpy as np
import scipy.stats

from .baselines import excess_kurtosis, mp_edges  # noqa: F401  (kurtosis: an entry statistic, re-exported)
from .errors import AnalysisError


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


def unmeasurable(sv: np.ndarray, rows: int, cols: int) -> str:
    """Why a spectrum's measures would be NaN or noise ("" if they are not): the tail fit
    (tail_alpha) needs at least two distinct nonzero eigenvalues, and a value below NumPy's
    matrix_rank tolerance (max(rows, cols) * eps * sigma_max) is rounding, not signal."""
    sv = np.asarray(sv, dtype=np.float64)
    top = float(sv.max()) if sv.size else 0.0
    signal = sv[sv > top * max(rows, cols) * np.finfo(np.float64).eps] if top > 0 else sv[:0]
    if len(signal) < 2:
        return f"rank {len(signal)} of {len(sv)}: the tail fit needs at least 2 nonzero singular values"
    if len(np.unique(signal**2)) < 2:
        return f"{len(signal)} equal nonzero singular values: the tail fit needs at least 2 distinct ones"
    return ""


def ks_optimal_xmin(x: np.ndarray, block: int = 256) -> float:
    """See `ks_optimal_fit`: its xmin."""
    return ks_optimal_fit(x, block)[0]


def tail_alpha(sv: np.ndarray) -> float:
    """Power-law alpha of the eigenvalues sigma^2 at the KS-optimal xmin, by the closed-form
    maximum-likelihood estimate powerlaw fits there (a test holds the two equal): cheap
    enough for every baseline draw."""
    lam = np.asarray(sv, dtype=np.float64) ** 2
    return ks_optimal_fit(lam[lam > 0])[1]


def ks_optimal_fit(x: np.ndarray, block: int = 256) -> tuple[float, float]:
    """The xmin that powerlaw.Fit(x) picks (continuous power law, no xmax; Clauset et al.):
    over every distinct value but the largest, the one whose maximum-likelihood tail
    alpha = 1 + n / sum(log(x / xmin)) has the smallest KS distance between the tail's
    empirical CDF and 1 - (x / xmin)^(1 - alpha). powerlaw fits each candidate in Python
    (0.25-0.3 s for 2048 values); here each block of candidates is one array operation."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    x = x[x > 0]
    u, first = np.unique(x, return_index=True)  # distinct values and where each starts in x
    if len(u) < 2:
        return float("nan"), float("nan")
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
    best = int(np.argmin(d))
    return float(u[best]), float(alpha[best])


def tail(sv: np.ndarray) -> float:
    """sigma_max / rms(sigma): how far the largest singular value stands out, scale-free."""
    sv = np.asarray(sv, dtype=np.float64)
    return float(np.max(sv) / np.sqrt(np.mean(sv**2)))


def stable_rank(sv: np.ndarray) -> float:
    """||W||_F^2 / ||W||_2^2: how many directions carry the matrix's energy."""
    sv = np.asarray(sv, dtype=np.float64)
    return float(np.sum(sv**2) / np.max(sv) ** 2)


def _pairwise_w1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a: (p, k), b: (r, k) sorted normalised spectra of equal length -> (p, r) W1 distances
    (for equal-size samples W1 is the mean gap between order statistics)."""
    return np.abs(a[:, None, :] - b[None, :, :]).mean(axis=2)


def _pairwise_ks(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a: (p, k), b: (r, k) sorted -> (p, r) two-sample KS statistics."""
    k = a.shape[1]
    out = np.empty((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            v = np.concatenate([x, y])
            out[i, j] = np.abs(np.searchsorted(x, v, "right") - np.searchsorted(y, v, "right")).max() / k
    return out


def reference_draws(n: int) -> int:
    """How many of n draws form the reference set that paired measures compare against; the
    rest are the null members, each compared with that same set exactly as the weights are."""
    return (n + 1) // 2


def against_draws(sv: np.ndarray, draws: dict, q: float = 0.1) -> tuple[dict, list[tuple]]:
    """The weights' shape measures against the baseline draws, and the same measures of the
    draws: the noise each measure is judged against.

    Paired measures (near_zero, w1_<kind>, ks_<kind>) compare a spectrum with a reference set
    of draws (the first `reference_draws(n)` of each kind). The weights and every other draw
    (the null members) are compared with that same set, so under the null that the weights
    are one more draw they are exchangeable with the null members: a band from those values
    keeps its level. (Comparing each draw with all others instead makes the null values
    share pairs, and their spread understates the noise.) Unpaired measures (tail, alpha)
    are given for every draw.

    sv: (k,) the weights' singular values; draws: {kind: (n_draws, k)}.
    -> ({measure: value} for the weights, [(kind, draw, measure, value)] for the draws).
    tail: sigma_max / rms; alpha: tail_alpha; near_zero: fraction below the reference
    Gaussian draws' q-quantiles (averaged); w1_/ks_<kind>: distance of scale-normalised
    spectra to the reference draws of <kind>, averaged."""
    sort = {kind: np.sort(np.stack([normalised(s) for s in d]), axis=1) for kind, d in draws.items()}
    ref = {kind: s[: reference_draws(len(s))] for kind, s in sort.items()}
    gq = np.quantile(ref["gaussian"], q, axis=1)  # each reference Gaussian draw's q-quantile

    def paired(x):  # x: (k,) sorted, normalised
        out = {"near_zero": float(np.mean(x[None] < gq[:, None]))}
        for kind, r in ref.items():
            out[f"w1_{kind}"] = float(_pairwise_w1(x[None], r).mean())
            out[f"ks_{kind}"] = float(_pairwise_ks(x[None], r).mean())
        return out

    weights = {"tail": tail(sv), "alpha": tail_alpha(sv), **paired(np.sort(normalised(sv)))}
    rows = []
    for kind, s in sort.items():
        for i, x in enumerate(s):
            rows += [(kind, i, "tail", tail(draws[kind][i])), (kind, i, "alpha", tail_alpha(draws[kind][i]))]
            if i >= reference_draws(len(s)):
                rows += [(kind, i, m, v) for m, v in paired(x).items()]
    return weights, rows


def of_record(r: dict, q: float = 0.1) -> tuple[dict, list[tuple]]:
    """Every measure of one spectrum record (extract.spectra) and of its baseline draws.
    -> ({measure: value} for the weights, [(kind, draw, measure, value)])"""
    var = r["gaussian_scale"] ** 2
    weights, draws = against_draws(r["sv"], {k: r[k] for k in ("gaussian", "logistic", "shuffled")}, q)
    sv = np.asarray(r["sv"])
    weights.update(below_mp_edge=below_mp_edge(sv, r["rows"], r["cols"], var), spikes=spikes(sv, r["rows"], r["cols"], var),
                   kurtosis=r["kurtosis"], std=r["std"], frobenius=float(np.sqrt(np.sum(sv**2))),
                   spectral_norm=float(sv.max()), stable_rank=stable_rank(sv), n_singular_values=len(sv))
    return weights, draws


MIN_RECORDS_PER_PROCESS = 200  # fewer: a spawned process's start (~1 s) outweighs what it saves


def _rows(records: list[dict], q: float) -> tuple[list, list]:
    """tables' rows for some records: ([(*ids, measure, value)], [(*ids, kind, draw, measure, value)])."""
    w_rows, d_rows = [], []
    for r in records:
        ids = (r["run"], r["step"], r["block"], r["role"])
        weights, draws = of_record(r, q)
        bad = [k for k, v in weights.items() if not np.isfinite(v)] + [f"{d[0]} draw {d[1]} {d[2]}" for d in draws
                                                                       if not np.isfinite(d[3])]
        if bad:  # extract.spectra refuses such spectra; this keeps any that slip through out of the tables
            raise AnalysisError(f"run {ids[0]!r} step {ids[1]} block {ids[2]} {ids[3]}: non-finite {', '.join(bad)}; "
                                "expected finite measures of a spectrum")
        w_rows += [(*ids, k, float(v)) for k, v in weights.items()]
        d_rows += [(*ids, *d) for d in draws]
    return w_rows, d_rows


def tables(records: list[dict], q: float = 0.1, processes: int | None = None):
    """Tidy tables of the weights' measures (run, step, block, role, measure, value) and of
    the draws' (run, step, block, role, kind, draw, measure, value), rows in the records'
    order. The measures are thousands of small NumPy calls that hold the GIL, so the records
    are shared among `processes` spawned processes (default: one per core, at most one per
    MIN_RECORDS_PER_PROCESS records); the rows are the same either way (tested)."""
    import pandas as pd

    from .parallel import cores, map_chunks

    if processes is None:  # chunks of MIN_RECORDS_PER_PROCESS: a few copies in flight, not all records
        parts = map_chunks(_rows, records, min(cores(), len(records) // MIN_RECORDS_PER_PROCESS), q,
                           size=MIN_RECORDS_PER_PROCESS)
    else:
        parts = map_chunks(_rows, records, processes, q)
    cols = ["run", "step", "block", "role"]
    return (pd.DataFrame([x for w, _ in parts for x in w], columns=[*cols, "measure", "value"]),
            pd.DataFrame([x for _, d in parts for x in d], columns=[*cols, "kind", "draw", "measure", "value"]))

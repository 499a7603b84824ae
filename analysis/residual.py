"""The study's toy model: a residual network whose blocks multiply by Gaussian matrices.

x_{l+1} = x_l + W_l x_l with W_l ~ N(0, sigma2 / d), so the end-to-end map after L blocks
is M_L = prod_l (I + W_l), a sum over all 2^L "product paths" (one per subset of blocks).
A path through k blocks is a product of k Gaussian matrices; at the critical sigma2 = 1
each path keeps the norm of its input, and paths of length k carry a share
C(L, k) sigma2^k / (1 + sigma2)^L of the output variance.
"""

import numpy as np
import scipy.special

from . import measures
from .backend import to_numpy
from .baselines import mp_cdf, mp_edges
from .spectra import singular_values

SIMULATION_VERSION = 1  # bump when `simulate` changes


def path_length_shares(depth: int, sigma2: float = 1.0) -> np.ndarray:
    """(depth + 1,) share of E||M_L x||^2 carried by the paths of each length k = 0..L."""
    k = np.arange(depth + 1)
    return scipy.special.comb(depth, k) * sigma2**k / (1 + sigma2) ** depth


def _rng(xp, seed):
    return np.random.default_rng(seed) if xp is np else xp.random.default_rng(seed)


def columns_for(width: int, aspect: float) -> int:
    """Input columns of M_L whose (width, columns) block has the aspect ratio min/max side."""
    return max(1, round(width * aspect))


def simulate(width: int, depth: int, seeds: int, sigma2: float = 1.0, n_inputs: int = 8, seed: int = 0,
             xp=np, aspects=(1.0,), spectra: bool = True) -> dict:
    """Run `seeds` independent toy networks at once, keeping every intermediate depth.

    One pass over depth; every seed is a slice of one batched product, never a Python loop.
    Weight matrices are rarely square (QKV is 3:1, the MLP 4:1), and aspect ratio alone
    changes a spectrum's shape (Marchenko-Pastur), so spectra are taken of M_L restricted to
    its first `columns_for(width, a)` input columns, for each aspect a = min side / max side.
    Returns numpy arrays:
      sv_{c}: (depth, seeds, c)  singular values of M_L[:, :c], L = 1..depth (if `spectra`)
      act: (depth, seeds, width * n_inputs)  entries of M_L x for Gaussian inputs x
    """
    rng = _rng(xp, seed)
    m = xp.broadcast_to(xp.eye(width), (seeds, width, width)).copy()  # M_0 = I, (seeds, d, d)
    x = rng.standard_normal((seeds, width, n_inputs))
    cols = sorted({columns_for(width, a) for a in aspects}) if spectra else []
    out = {f"sv_{c}": np.empty((depth, seeds, c)) for c in cols}
    act = np.empty((depth, seeds, width * n_inputs))
    scale = np.sqrt(sigma2 / width)
    for layer in range(depth):
        w = rng.standard_normal((seeds, width, width)) * scale  # W_l: (seeds, d, d)
        m = m + w @ m  # M_{l+1} = (I + W_l) M_l
        act[layer] = to_numpy((m @ x).reshape(seeds, -1))
        for c in cols:
            # Deep products are ill-conditioned, so nearly every M_L would take the refinement
            # path; its gain (values below 1e-4 sigma_max exact to 1e-15 rather than ~1e-8
            # sigma_max) is far below what histograms and W1 distances here can resolve.
            out[f"sv_{c}"][layer] = to_numpy(singular_values(m[:, :, :c], xp, refine=False))
    out["act"] = act
    return out


def product(width: int, depth: int, rng, sigma2: float = 1.0) -> np.ndarray:
    """One toy network's end-to-end map M_L = prod_l (I + W_l), W_l ~ N(0, sigma2 / width),
    from a NumPy generator. -> (width, width) float64"""
    m = np.eye(width)
    scale = np.sqrt(sigma2 / width)
    for _ in range(depth):
        m = m + (rng.standard_normal((width, width)) * scale) @ m
    return m


def simulate_per_seed_loop(width: int, depth: int, seeds: int, sigma2: float = 1.0, n_inputs: int = 8,
                           seed: int = 0) -> dict:
    """The same products one seed at a time in Python: the benchmark's baseline."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((seeds, width, n_inputs))
    act = np.empty((depth, seeds, width * n_inputs))
    ms = [np.eye(width) for _ in range(seeds)]
    scale = np.sqrt(sigma2 / width)
    for layer in range(depth):
        for s in range(seeds):
            w = rng.standard_normal((width, width)) * scale
            ms[s] = ms[s] + w @ ms[s]
            act[layer, s] = (ms[s] @ x[s]).ravel()
    return {"act": act}


def depth_curves(sim: dict, width: int, alpha_seeds: int = 4) -> dict:
    """Non-Gaussianity against depth (L = 1..depth), each (depth,) averaged over seeds:
    excess kurtosis of the activations, KS and W1 distance of the square M_L's spectrum to
    the Marchenko-Pastur (quarter-circle) law of its own scale, and the power-law alpha
    (first `alpha_seeds` seeds)."""
    sv, act = sim[f"sv_{width}"], sim["act"]
    depth = sv.shape[0]
    out = {"depth": np.arange(1, depth + 1)}
    out["kurtosis"] = np.array([np.mean([measures.excess_kurtosis(a) for a in act[layer]]) for layer in range(depth)])
    ks, w1 = np.zeros(depth), np.zeros(depth)
    for layer in range(depth):
        ref = mp_reference(width, sv[layer])
        ks[layer] = np.mean([measures.ks_distance(s, ref) for s in sv[layer]])
        w1[layer] = np.mean([measures.w1_distance(s, ref) for s in sv[layer]])
    out["ks_mp"], out["w1_mp"] = ks, w1
    out["alpha"] = np.array([np.mean([measures.powerlaw_alpha(s)["alpha"] for s in sv[layer, :alpha_seeds]])
                             for layer in range(depth)])
    return out


def mp_reference(width: int, sv: np.ndarray, n: int = 4096) -> np.ndarray:
    """Quantiles of the Marchenko-Pastur (quarter-circle) singular-value law for a square
    matrix with the same mean sigma^2 as `sv`: a sample-free stand-in for comparison."""
    var = float(np.mean(np.asarray(sv) ** 2)) / width  # E sigma^2 = width * var for a square matrix
    grid = np.linspace(0, mp_edges(width, width, var)[1], 20000)
    cdf = mp_cdf(grid, width, width, var)
    return np.interp((np.arange(n) + 0.5) / n, cdf, grid)


def effective_depth(weight_sv: np.ndarray, rows: int, cols: int, sim: dict, width: int) -> dict:
    """The toy depth whose scale-normalised spectrum is closest (Wasserstein-1 on
    sigma / rms(sigma)) to a weight matrix's spectrum, at the weight's aspect ratio.

    weight_sv: (k,) of a (rows, cols) matrix; sim: `simulate` output including that aspect.
    Returns the depth minimising the mean distance over seeds, the band of per-seed best
    depths (10th-90th percentile), and the mean distance curve (depth,)."""
    key = f"sv_{columns_for(width, min(rows, cols) / max(rows, cols))}"
    if key not in sim:
        raise KeyError(f"the simulation has no spectra at aspect {rows}x{cols} ({key}); pass it in `aspects`")
    sim_sv = sim[key]
    depth, seeds, _ = sim_sv.shape
    dist = np.array([[measures.w1_distance(weight_sv, sim_sv[layer, s]) for s in range(seeds)] for layer in range(depth)])
    best_per_seed = dist.argmin(axis=0) + 1
    curve = dist.mean(axis=1)
    return {"depth": int(curve.argmin() + 1), "low": float(np.percentile(best_per_seed, 10)),
            "high": float(np.percentile(best_per_seed, 90)), "distance": float(curve.min()), "curve": curve}

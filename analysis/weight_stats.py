"""Entry statistics of weight matrices read from checkpoints (std, mean, max, Frobenius
norm), and their comparison with a published table of the same statistics.

The published Pythia statistics (analysis.published) are float32 numbers computed from the
same float16 weights a reader gets; ours are computed in float64 from the tensors as read.
Both sides start from identical numbers, so they differ only by the publisher's float32
arithmetic, not by float16 rounding.
"""

import numpy as np
import pandas as pd
import scipy.stats

STATISTICS = ("std", "mean", "max", "norm")
# Relative tolerances (mean: relative to the entries' rms). Measured: torch's float32 std,
# mean and max of float16 matrices of 3k–16M entries differ from ours by at most 5e-8, 2e-10
# and 0 (tests/test_published.py); 1e-5 leaves a margin of 200. The norm is the loose one:
# the published 19m norms differ from their own std and mean by up to 5.5e-5 (the audit's
# "norm from std and mean"), float32 accumulation over ~1M entries, so 1e-4. The earlier
# 2^-10 (float16 rounding) let a neighbouring checkpoint pass.
TOLERANCE = {"std": 1e-5, "mean": 1e-5, "max": 1e-5, "norm": 1e-4}


def matrix_stats(w: np.ndarray) -> dict:
    """w: (out, in) -> {std (n − 1 in the denominator, torch's default), mean, max, norm
    (Frobenius)} in float64."""
    x = np.asarray(w, dtype=np.float64).ravel()
    return {"std": float(x.std(ddof=1)), "mean": float(x.mean()), "max": float(x.max()),
            "norm": float(np.sqrt(np.dot(x, x)))}


def of_runs(runs: dict, steps: dict, roles: list[str]) -> pd.DataFrame:
    """Every block's matrices of every run at its steps. runs: {name: Run}; steps: {name:
    [step]}. -> (run, step, block, role, statistic, value)"""
    rows = []
    for name, run in runs.items():
        for step in steps[name]:
            ck = run.checkpoint(step)
            for block in range(ck.n_layers):
                for role in roles:
                    w = ck.matrix(role, block)
                    rows += [{"run": name, "step": int(step), "block": block, "role": role, "statistic": k,
                              "value": v, "n": int(w.size)} for k, v in matrix_stats(w).items()]
    return pd.DataFrame(rows, columns=["run", "step", "block", "role", "statistic", "value", "n"])


def compare(ours: pd.DataFrame, published: pd.DataFrame, tolerance: dict | float = TOLERANCE) -> pd.DataFrame:
    """Per (step, block, role, statistic) present in both tables (statistics in STATISTICS):
    ours against published, the difference's scale (the value itself; for the mean, the
    entries' rms sqrt(std² + mean²)) and whether it is within `tolerance` (per statistic, or
    one for all) of that scale.
    -> (step, block, role, statistic, ours, published, scale, relative, agrees)"""
    keys = ["step", "block", "role", "statistic"]
    a = ours[ours["statistic"].isin(STATISTICS)][keys + ["value"]].rename(columns={"value": "ours"})
    b = published[published["statistic"].isin(STATISTICS)][keys + ["value"]].rename(columns={"value": "published"})
    m = a.merge(b, on=keys, how="inner")
    std = ours[ours["statistic"] == "std"].set_index(["step", "block", "role"])["value"]
    mean = ours[ours["statistic"] == "mean"].set_index(["step", "block", "role"])["value"]
    rms = np.sqrt(std**2 + mean**2)
    idx = pd.MultiIndex.from_frame(m[["step", "block", "role"]])
    scale = np.where(m["statistic"] == "mean", rms.reindex(idx).to_numpy(), np.abs(m["ours"].to_numpy()))
    m["scale"] = scale
    m["relative"] = np.abs(m["ours"] - m["published"]) / m["scale"]
    tol = m["statistic"].map(tolerance) if isinstance(tolerance, dict) else tolerance
    m["agrees"] = m["relative"] <= tol
    return m.sort_values(keys, kind="stable").reset_index(drop=True)


def mismatched_steps(comparison: pd.DataFrame) -> list[int]:
    """Steps with at least one statistic outside the tolerance."""
    return sorted(int(s) for s in comparison.loc[~comparison["agrees"], "step"].unique())


def gaussian_max(n: int) -> float:
    """Median of the largest of n standard normal values, Φ⁻¹(0.5^(1/n)): the tail proxy's
    Gaussian reference."""
    return float(scipy.stats.norm.isf(-np.expm1(np.log(0.5) / n)))


def tail_ratio(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The tail proxy per matrix: (max − mean) / std of its entries over the median largest
    of n Gaussian values (1: as extreme as a Gaussian matrix's largest entry; above: a
    heavier upper tail). table: (*keys, statistic, value, n) with std, mean and max per
    matrix. -> (*keys, value)"""
    w = table[table["statistic"].isin(["std", "mean", "max"])].pivot_table(
        index=keys + ["n"], columns="statistic", values="value").reset_index()
    ref = np.array([gaussian_max(int(n)) for n in w["n"]])
    w["value"] = (w["max"] - w["mean"]) / w["std"] / ref
    return w[keys + ["value"]]

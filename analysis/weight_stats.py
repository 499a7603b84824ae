"""Entry statistics of weight matrices read from checkpoints (std, mean, max, Frobenius
norm), and their comparison with a published table of the same statistics.

The published Pythia statistics (analysis.published) were computed from float16 weights;
ours are computed in float64 from the tensors as read, so the two agree to float16
rounding when both read the same weights.
"""

import numpy as np
import pandas as pd
import scipy.stats

STATISTICS = ("std", "mean", "max", "norm")
# Rounding every entry to float16 moves std, max and norm by at most 2^-11 relative and the
# mean by at most 2^-11 of the entries' rms; twice that leaves room for the publisher's own
# float16/float32 arithmetic.
TOLERANCE = 2.0**-10


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


def compare(ours: pd.DataFrame, published: pd.DataFrame, tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Per (step, block, role, statistic) present in both tables (statistics in STATISTICS):
    ours against published, the difference's scale (the value itself; for the mean, the
    entries' rms sqrt(std² + mean²)) and whether it is within `tolerance` of that scale.
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
    m["agrees"] = m["relative"] <= tolerance
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

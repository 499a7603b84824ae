"""Through-training measures: trajectories, run-to-run similarity and change points.

Inputs are the tidy measures table (run, step, block, role, measure, value). Trajectories
are indexed by checkpoint order, as the study's "checkpoint 20" is.
"""

import numpy as np
import pandas as pd
import ruptures
import scipy.stats


def trajectories(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Wide table: index (role, block, step), one column per run."""
    sub = table[table["measure"] == measure]
    return sub.pivot_table(index=["role", "block", "step"], columns="run", values="value").sort_index()


def run_similarity(table: pd.DataFrame, measure: str, a: str, b: str) -> pd.DataFrame:
    """Per role and block: Pearson r of the two runs' trajectories, and the largest relative
    difference |a - b| / mean(|a|, |b|) with the step where it happens."""
    wide = trajectories(table, measure)
    rows = []
    for (role, block), g in wide.groupby(level=["role", "block"], sort=False):
        x, y = g[a].to_numpy(), g[b].to_numpy()
        rel = np.abs(x - y) / np.maximum((np.abs(x) + np.abs(y)) / 2, 1e-30)
        i = int(rel.argmax())
        rows.append({"role": role, "block": block, "pearson_r": float(scipy.stats.pearsonr(x, y).statistic),
                     "max_rel_diff": float(rel[i]), "at_step": int(g.index.get_level_values("step")[i])})
    return pd.DataFrame(rows)


def ordering_agreement(table: pd.DataFrame, measure: str, a: str, b: str) -> pd.DataFrame:
    """Per role and step: Kendall tau between the two runs' orderings of the blocks."""
    wide = trajectories(table, measure)
    rows = []
    for (role, step), g in wide.groupby(level=["role", "step"], sort=False):
        if len(g) > 2:
            rows.append({"role": role, "step": step, "kendall_tau": float(scipy.stats.kendalltau(g[a], g[b]).statistic)})
    return pd.DataFrame(rows)


def largest_shift(values: np.ndarray) -> dict:
    """The single most important change point of a trajectory (ruptures' binary segmentation,
    l2 cost), and how sharp it is: the largest one-checkpoint change next to it, as a fraction
    of the trajectory's whole range (1: all change happens in one interval)."""
    x = np.asarray(values, dtype=np.float64)
    span = float(x.max() - x.min())
    if len(x) < 4 or span == 0:
        return {"index": None, "sharpness": 0.0, "size": 0.0}
    (b, _end) = ruptures.Binseg(model="l2", min_size=1, jump=1).fit(x[:, None]).predict(n_bkps=1)
    near = [i for i in (b - 1, b, b + 1) if 1 <= i < len(x)]
    steps = np.abs(np.diff(x))
    return {"index": int(b), "sharpness": float(max(steps[i - 1] for i in near) / span),
            "size": float(abs(x[b:].mean() - x[:b].mean()) / span)}


def shifts(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per run and role: the largest shift of the block-averaged trajectory (each block's
    trajectory divided by its value at the first checkpoint), its checkpoint and step."""
    sub = table[table["measure"] == measure]
    rows = []
    for (run, role), g in sub.groupby(["run", "role"], sort=False):
        wide = g.pivot_table(index="step", columns="block", values="value").sort_index()
        mean = (wide / wide.iloc[0]).mean(axis=1)
        s = largest_shift(mean.to_numpy())
        step = None if s["index"] is None else int(mean.index[s["index"]])
        rows.append({"run": run, "role": role, "checkpoint": s["index"], "step": step,
                     "sharpness": s["sharpness"], "size": s["size"]})
    return pd.DataFrame(rows)

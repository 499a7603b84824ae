"""Through-training comparisons of runs, shaped for the deduplication chapter's figures.

Plain functions of the results' tidy tables (run, step, block, role, measure, value): the
measures table (`results.measures`) and the run distances (`results.run_distances`).
The verdicts themselves are in analysis.verdicts; these only shape what the figures show.
"""

import numpy as np
import pandas as pd
import scipy.stats


def trajectories(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Wide table of one measure: index (role, block, step), one column per run."""
    sub = table[table["measure"] == measure]
    return sub.pivot_table(index=["role", "block", "step"], columns="run", values="value").sort_index()


def ordering_agreement(table: pd.DataFrame, measure: str, reference: str) -> pd.DataFrame:
    """Per other run, role and step: Kendall τ between that run's and the reference's
    ordering of the blocks by `measure` (1: same order). Steps where either run lacks a
    block, or with fewer than three blocks, are left out.
    -> (run, role, step, kendall_tau)"""
    wide = trajectories(table, measure)
    others = [run for run in dict.fromkeys(table["run"]) if run != reference]
    rows = []
    roles = list(dict.fromkeys(table["role"]))
    for (role, step), g in sorted(wide.groupby(level=["role", "step"]), key=lambda x: (roles.index(x[0][0]), x[0][1])):
        for run in others:
            pair = g[[reference, run]].dropna() if run in g else g.iloc[:0]
            if len(pair) > 2:
                tau = scipy.stats.kendalltau(pair[reference], pair[run]).statistic
                rows.append({"run": run, "role": role, "step": int(step), "kendall_tau": float(tau)})
    return pd.DataFrame(rows, columns=["run", "role", "step", "kendall_tau"])


def over_blocks(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per run, role and step: mean of `measure` over the blocks, with the smallest and
    largest block's value. -> (run, role, step, mean, low, high, blocks)"""
    sub = table[table["measure"] == measure]
    out = (sub.groupby(["run", "role", "step"], sort=False)["value"]
           .agg(mean="mean", low="min", high="max", blocks="size").reset_index())
    return out.sort_values("step", kind="stable").reset_index(drop=True)


def mean_over_matrices(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per run and step: mean of `measure` over every matrix (block and role) that has it,
    as verdicts.diverged_from averages the weight distance. -> (run, step, value)"""
    sub = table[table["measure"] == measure]
    out = sub.groupby(["run", "step"], sort=False)["value"].mean().reset_index()
    return out.sort_values("step", kind="stable").reset_index(drop=True)


def activation_kurtosis(activations: list[dict]) -> pd.DataFrame:
    """The activation records' per-block excess kurtosis as a tidy table.
    -> (run, step, block, kurtosis)"""
    rows = [{"run": a["run"], "step": int(a["step"]), "block": b, "kurtosis": float(k)}
            for a in activations for b, k in enumerate(np.asarray(a["kurtosis"]))]
    return pd.DataFrame(rows, columns=["run", "step", "block", "kurtosis"])



def change_points(steps, values, n_breaks: int = 2, min_size: int = 3) -> dict:
    """The n_breaks changes of slope that best split a trajectory into joined straight
    lines (ruptures' exact dynamic programming, continuous piecewise-linear cost), each
    located to a checkpoint, with every segment's least-squares slope per step. Always
    finds them: a location, not a test. With two breaks, a "phase shift" shows as a middle
    segment steeper than the first (acceleration = its slope over the first's, above 1).
    -> {breaks: [step], slopes: [per segment], acceleration}"""
    import ruptures

    x, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    ends = ruptures.Dynp(model="clinear", min_size=min_size, jump=1).fit(y.reshape(-1, 1)).predict(n_bkps=n_breaks)
    cuts = [0] + [k - 1 for k in ends[:-1]] + [len(x) - 1]  # segments share their end checkpoints
    slopes = [float(np.polyfit(x[a:b + 1], y[a:b + 1], 1)[0]) for a, b in zip(cuts[:-1], cuts[1:])]
    return {"breaks": [int(x[k]) for k in cuts[1:-1]], "slopes": slopes,
            "acceleration": slopes[1] / slopes[0] if slopes[0] != 0 else np.nan}

"""Through-training comparisons of runs, shaped for the deduplication chapter's figures,
and the init runs' share of the learned non-Gaussian excess (report/init-spectrum.qmd).

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



KINK_WINDOW = 5  # checkpoints each side of a candidate kink (5000 steps in Pythia's schedule)
KINK_GROWING = 0.1  # a kink is looked for where the curve grows: slope before ≥ this share of its steepest
SHIFT_ACCELERATION = 2.0  # a "phase shift": the slope at least doubles across the kink


def window_slopes(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """Least-squares slope of y on x over every run of w + 1 consecutive points. -> (len(x) − w,)"""
    X, Y = (np.lib.stride_tricks.sliding_window_view(a, w + 1) for a in (x, y))
    xc = X - X.mean(axis=1, keepdims=True)
    return (xc * (Y - Y.mean(axis=1, keepdims=True))).sum(axis=1) / (xc**2).sum(axis=1)


def sharpest_kink(steps, values, window: int = KINK_WINDOW) -> dict:
    """The checkpoint where a growing trajectory's slope increases most: slope over the
    next `window` checkpoints minus slope over the previous `window`, among checkpoints
    where the curve grows on both sides (slope before at least KINK_GROWING of the curve's
    steepest window slope, so a ratio is not taken of a near-zero slope), and the
    acceleration there (slope after over slope before). Always finds a kink when the curve
    grows anywhere: a location; whether it is a phase shift is `kink_null`'s to judge.
    -> {step, before, after, acceleration} (step NaN where the curve never grows)"""
    x, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    s = window_slopes(x, y, window)
    before, after = s[:-window], s[window:]  # at checkpoints window … len − window − 1
    ok = (before >= KINK_GROWING * s.max()) & (after > 0) & (s.max() > 0)
    if not ok.any():
        return {"step": np.nan, "before": np.nan, "after": np.nan, "acceleration": np.nan}
    k = int(np.argmax(np.where(ok, after - before, -np.inf)))
    return {"step": float(x[k + window]), "before": float(before[k]), "after": float(after[k]),
            "acceleration": float(after[k] / before[k])}


def acceleration_at(steps, values, step, window: int = KINK_WINDOW) -> float:
    """Slope over the `window` checkpoints after `step` over the slope over the `window`
    before it (a shared kink's size in a curve whose own sharpest kink may lie elsewhere);
    NaN where either window runs off the curve or the slope before is not positive."""
    x, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    k = int(np.searchsorted(x, step))
    if k < window or k + window >= len(x) or x[k] != step:
        return np.nan
    before = window_slopes(x[k - window:k + 1], y[k - window:k + 1], window)[0]
    after = window_slopes(x[k:k + window + 1], y[k:k + window + 1], window)[0]
    return float(after / before) if before > 0 else np.nan


def noise_sd(values) -> float:
    """Checkpoint-to-checkpoint noise of a smooth trajectory: the MAD of its second
    differences over √6 (each is a sum of three noise terms with weights 1, −2, 1), robust to
    a few kinks."""
    d = np.diff(np.asarray(values, dtype=np.float64), 2)
    return float(scipy.stats.median_abs_deviation(d, scale="normal") / np.sqrt(6))


def kink_null(steps, values, draws: int, seed: int, window: int = KINK_WINDOW) -> np.ndarray:
    """`sharpest_kink`'s acceleration on surrogate curves without a shift: the trajectory's
    smooth fit (a cubic in log step: it bends, saturates and turns slowly, but cannot turn
    sharply; a quadratic cannot follow saturating growth and lets ~10% of smooth curves
    through) plus independent Gaussian noise of the trajectory's own checkpoint-to-checkpoint
    size (`noise_sd`).
    The share at or above a threshold is the detector's false-positive rate on this curve.
    -> (draws,) accelerations (NaN where a surrogate never grows)"""
    x, y = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    smooth = np.polyval(np.polyfit(np.log(x), y, 3), np.log(x))
    rng = np.random.default_rng(seed)
    sd = noise_sd(y)
    return np.array([sharpest_kink(x, smooth + rng.normal(0, sd, len(x)), window)["acceleration"]
                     for _ in range(draws)])


def phase_shift(steps, values, draws: int, seed: int, level: float = 0.95,
                threshold: float = SHIFT_ACCELERATION) -> dict:
    """A trajectory's sharpest kink judged against its smooth null (`kink_null`): a phase
    shift when the acceleration is at least `threshold` and beyond what the null gives
    (p = share of null draws at least as large, counted with the observed; p ≤ 1 − level).
    -> sharpest_kink's dict + {p, false_positive (null draws at or above threshold), shift}"""
    k = sharpest_kink(steps, values)
    null = np.nan_to_num(kink_null(steps, values, draws, seed), nan=0.0)
    acc = k["acceleration"]
    p = float((1 + np.sum(null >= acc)) / (1 + draws)) if np.isfinite(acc) else 1.0
    return {**k, "p": p, "false_positive": float(np.mean(null >= threshold)),
            "shift": bool(np.isfinite(acc) and acc >= threshold and p <= 1 - level)}


def learned_excess_share(measures: pd.DataFrame, draws: pd.DataFrame, level: float) -> pd.DataFrame:
    """How far from Gaussian an init run's spectrum is, in units of the trained spectrum's
    distance, per init kind, seed, role and step. excess: the W1 distance (σ/rms) to the
    run's own Gaussian draws minus the draws' mean distance (0: as Gaussian as a Gaussian
    matrix). The learned excess of a role is the transplant's at step 0 (which has the
    trained matrix's singular values; seeds differ only in their draws), averaged over
    seeds; share = excess / learned excess (above 1: further from Gaussian than the trained
    matrix; the measure is scale-free, so one unit per role serves every kind, rescaled or not), and
    noise = the half-width of the draws' `level` prediction band in the same unit. NaN
    where the learned excess is not at least twice its own band's half-width for every seed
    (too little excess to measure in). A distance from Gaussian, not a likeness to the
    learned shape. measures/draws: measures.tables of the init runs with kind and seed columns.
    -> (kind, seed, step, role, excess, share, noise)"""
    from .intervals import prediction_band

    keys = ["kind", "seed", "step", "role"]
    m = measures[measures["measure"] == "w1_gaussian"].set_index(keys)["value"]
    d = draws[(draws["draw_kind"] == "gaussian") & (draws["measure"] == "w1_gaussian")].groupby(keys)["value"]
    centre = d.mean()
    half = d.apply(lambda v: np.diff(prediction_band(v, level))[0] / 2)
    out = pd.DataFrame({"excess": m - centre.reindex(m.index), "half": half.reindex(m.index)}).reset_index()
    start = out[(out["kind"] == "transplant") & (out["step"] == 0)]
    clear = start.groupby("role")[["excess", "half"]].apply(lambda g: bool((g["excess"] >= 2 * g["half"]).all()))
    learned = start.groupby("role")["excess"].mean().where(clear)
    unit = learned.reindex(out["role"]).to_numpy()
    out["share"] = out["excess"].to_numpy() / unit
    out["noise"] = out.pop("half").to_numpy() / unit
    return out

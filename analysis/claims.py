"""The study's claims as computed verdicts: claim, measure, value, verdict — never typed by hand."""

import numpy as np
import pandas as pd
import scipy.stats

from .compute import NEAR_ZERO_Q

HEAVY_TAIL = 1.10  # sigma_max over the Gaussian baseline's: baseline sigma_max varies by ~1% (Tracy-Widom)
NEAR_ZERO_P = 0.01  # one-sided binomial test against the baseline's NEAR_ZERO_Q
FORMED_BY = 0.25  # "forms early": covered half its way from init to final within this fraction of training


def _value(table, run, step, role, measure) -> float:
    sel = table[(table.run == run) & (table.step == step) & (table.role == role) & (table.measure == measure)]
    return float(sel["value"].iloc[0])


def formation_step(table, run, role, measure="ks_gaussian") -> tuple[int | None, bool]:
    """First step at which the distance to the Gaussian baseline has covered half its way from
    initialisation to the last step, and whether it stays past that point afterwards.
    (None, False) when the distance does not grow at all."""
    g = table[(table.run == run) & (table.role == role) & (table.measure == measure)].sort_values("step")
    v = g["value"].to_numpy()
    if v[-1] <= v[0]:
        return None, False
    above = v >= v[0] + 0.5 * (v[-1] - v[0])
    first = int(above.argmax())
    return int(g["step"].iloc[first]), bool(above[first:].all())


def weight_distribution(table: pd.DataFrame) -> pd.DataFrame:
    """Verdicts on claim 1 of the study, per run, at the last step."""
    rows = []

    def add(claim, run, role, measure, value, holds):
        rows.append({"claim": claim, "run": run, "role": role, "measure": measure, "value": value,
                     "verdict": "holds" if holds else "does not hold"})

    for run, t in table.groupby("run", sort=False):
        last = int(t["step"].max())
        roles = list(dict.fromkeys(t["role"]))
        for role in [r for r in roles if r != "attn_out"]:
            v = _value(t, run, last, role, "top_ratio_gaussian")
            add("tail heavier than Gaussian", run, role, "σmax / σmax(Gaussian)", v, v > HEAVY_TAIL)
            v = _value(t, run, last, role, "top_ratio_logistic")
            add("tail heavier than logistic", run, role, "σmax / σmax(logistic)", v, v > HEAVY_TAIL)
            frac = _value(t, run, last, role, "near_zero_gaussian")
            n = int(_value(t, run, last, role, "n_singular_values"))
            p = scipy.stats.binomtest(round(frac * n), n, NEAR_ZERO_Q, alternative="greater").pvalue
            add("more near-zero singular values than Gaussian", run, role,
                f"fraction of σ below the Gaussian's {NEAR_ZERO_Q:.0%} quantile", frac, p < NEAR_ZERO_P)
        if "attn_out" in roles:
            ks = {r: _value(t, run, last, r, "ks_gaussian") for r in roles}
            add("attention output is the most Gaussian role", run, "attn_out", "KS to Gaussian (smallest of roles?)",
                ks["attn_out"], ks["attn_out"] == min(ks.values()))
        for role in roles:
            step, stays = formation_step(t, run, role)
            add("shape forms early and then stays", run, role, "step at half-way from initial to final KS",
                float("nan") if step is None else step, step is not None and step <= FORMED_BY * last and stays)
    return pd.DataFrame(rows)


STUDY_DEPTH_BAND = (10, 20)  # the study's effective depth for pythia-1b ...
STUDY_LAYERS = 16  # ... whose true depth is 16 blocks


def residual_paths(curves: dict, eff: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Verdicts on claim 2: the toy's non-Gaussianity grows with depth, and matching its depth
    to the weights gives an effective depth like the study's (10-20 blocks of 16, scaled to
    this model's depth)."""
    rows = []
    for key, label in (("ks_mp", "KS distance to MP"), ("kurtosis", "activation kurtosis")):
        rho, p = scipy.stats.spearmanr(curves["depth"], curves[key])
        rows.append({"claim": "toy non-Gaussianity grows with depth", "run": "toy", "role": "",
                     "measure": f"Spearman ρ(depth, {label})", "value": float(rho),
                     "verdict": "holds" if rho > 0 and p < 0.01 else "does not hold"})
    lo, hi = (b * n_layers / STUDY_LAYERS for b in STUDY_DEPTH_BAND)
    last = eff[eff.step == eff.step.max()]
    for _, r in last.iterrows():
        rows.append({"claim": f"effective depth in the study's band, scaled: {lo:.3g}-{hi:.3g} of {n_layers} blocks",
                     "run": r["run"], "role": r["role"], "measure": "toy depth closest in W1",
                     "value": float(r["effective_depth"]), "verdict": "holds" if lo <= r["effective_depth"] <= hi
                     else "does not hold"})
    return pd.DataFrame(rows)


OUTPUT_ROLES = ("attn_out", "mlp_out")  # the rest (qkv, mlp_in) are input matrices
DEPTH_P = 0.05


def depth_trends(table: pd.DataFrame, measure: str = "ks_gaussian") -> pd.DataFrame:
    """Verdicts on claim 3: along depth, output matrices get more Gaussian (distance to the
    Gaussian baseline falls with block index); input matrices stay the same or get heavier
    tails (no significant fall). Spearman rank correlation over blocks, last step."""
    rows = []
    for run, t in table[table.measure == measure].groupby("run", sort=False):
        last = t[t.step == t.step.max()]
        for role, g in last.groupby("role", sort=False):
            rho, p = scipy.stats.spearmanr(g["block"], g["value"])
            if role in OUTPUT_ROLES:
                claim, holds = "output matrix more Gaussian in later blocks", rho < 0 and p < DEPTH_P
            else:
                claim, holds = "input matrix same or heavier-tailed in later blocks", not (rho < 0 and p < DEPTH_P)
            rows.append({"claim": claim, "run": run, "role": role, "measure": f"Spearman ρ(block, {measure})",
                         "value": float(rho), "p": float(p), "verdict": "holds" if holds else "does not hold"})
    return pd.DataFrame(rows)


STUDY_CLAIMS = {
    1: "QKV and MLP spectra grow heavy tails and excess near-zero mass, early and stably; attention output stays nearer Gaussian",
    2: "products of Gaussian matrices along residual paths reproduce it; effective depth ≈ 10-20 of 16 blocks",
    3: "across depth, output matrices get more Gaussian, input matrices stay or get heavier-tailed",
    4: "deduplicated and raw runs behave alike (norm trajectories, block order); deduped QKV shifts more sharply",
}


def summary(tables: dict) -> pd.DataFrame:
    """One row per study claim: how many of its tested parts hold, and the overall verdict.
    tables: {claim number: verdict table from this module}."""
    rows = []
    for number, table in tables.items():
        n, held = len(table), int((table["verdict"] == "holds").sum())
        verdict = "holds" if held == n else "does not hold" if held == 0 else "partly holds"
        rows.append({"claim": number, "the study says": STUDY_CLAIMS[number],
                     "measured": f"{held} of {n} tested parts hold", "verdict": verdict})
    return pd.DataFrame(rows)


SIMILAR_R = 0.9  # trajectories "qualitatively the same": Pearson r above this
SIMILAR_TAU = 0.5  # block orderings agree: mean Kendall tau above this
SHARPER = 1.1  # "sharper": deduped sharpness at least 10% above raw
ALIKE_JS = 0.1  # activation histograms alike: mean Jensen-Shannon distance below this


def deduplication(similarity: pd.DataFrame, ordering: pd.DataFrame, shifts: pd.DataFrame, deduped: str, raw: str,
                  activations: list | None = None) -> pd.DataFrame:
    """Verdicts on claim 4: the runs' per-block norm trajectories and block orderings agree,
    their residual-stream histograms on held-out text are alike, and the deduplicated run's
    QKV norms shift more sharply than the raw run's."""
    rows = []
    if activations:
        from .activations import js_distance

        by = {(r["run"], r["step"]): r["hist"] for r in activations}
        first = min(s for _, s in by)
        dists = [js_distance(by[(raw, s)][b], by[(deduped, s)][b]) for (run, s) in by if run == raw and s != first
                 and (deduped, s) in by for b in range(by[(raw, s)].shape[0])]
        if dists:
            js = float(np.mean(dists))
            rows.append({"claim": "residual-stream histograms alike", "role": "all blocks",
                         "measure": "mean Jensen-Shannon distance (raw vs deduped)", "value": js,
                         "verdict": "holds" if js < ALIKE_JS else "does not hold"})
    for role, g in similarity.groupby("role", sort=False):
        r = float(g["pearson_r"].median())
        rows.append({"claim": "norm trajectories qualitatively the same", "role": role,
                     "measure": "median over blocks of Pearson r (raw vs deduped)", "value": r,
                     "verdict": "holds" if r > SIMILAR_R else "does not hold"})
    later = ordering[ordering["step"] > ordering["step"].min()]  # both runs start from the same weights
    for role, g in later.groupby("role", sort=False):
        tau = float(g["kendall_tau"].mean())
        rows.append({"claim": "block orderings agree", "role": role, "measure": "mean over steps of Kendall τ",
                     "value": tau, "verdict": "holds" if tau > SIMILAR_TAU else "does not hold"})
    s = shifts.set_index(["run", "role"])
    if (deduped, "qkv") in s.index and (raw, "qkv") in s.index:
        d, r = s.loc[(deduped, "qkv"), "sharpness"], s.loc[(raw, "qkv"), "sharpness"]
        rows.append({"claim": "deduped QKV norms shift more sharply than raw", "role": "qkv",
                     "measure": "sharpness, deduped over raw", "value": float(d / r) if r else float("inf"),
                     "verdict": "holds" if d > SHARPER * r else "does not hold"})
    return pd.DataFrame(rows)

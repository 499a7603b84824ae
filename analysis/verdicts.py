"""The study's claims as three-valued verdicts, each judged against measured noise.

Every function takes the results' tables and returns one row per tested part:
claim, part, run, role, measure, effect (the measured value), low/high (its interval),
noise_low/noise_high (what noise alone gives), resolution (the smallest effect the test
detects with 80% power, where it can be stated) and verdict (holds / does not hold /
undecided; the wiring comparison: agree / differ / undecided, about the
difference between two architectures, not the fact). Nothing here is typed into prose by hand; properties that hold by construction
(the toy's own depth trend) are figures, not rows.
"""

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from . import dynamics
from . import intervals as iv

STUDY_CLAIMS = {
    1: "QKV and MLP spectra grow heavy tails and excess near-zero mass, early and stably; attention output stays nearer Gaussian",
    2: "products of Gaussian matrices along residual paths reproduce it; toy depths ≈ 10-20 match 16 blocks",
    3: "across depth, output matrices get more Gaussian, input matrices stay or get heavier-tailed",
    4: "deduplicated and raw runs behave alike (spectra, norms, block order, activations); deduped QKV shifts more sharply",
}
# Questions the study left open, tested here as the claims are (numbered after them).
BEYOND_STUDY = {
    6: "claims 1–3 measure the same in parallel and sequential-residual (GPT-2-style) blocks",
    7: "an initialisation drawn from the learned weights' distribution trains faster than the standard one",
}
FASTER = "trains faster than the standard init (held-out loss)"
# What the band test decides: non-Gaussian beyond noise, not how much of the learned shape
# (the init chapter measures that as a share of the learned excess, dynamics.learned_excess_share).
SHAPE_PARTS = {"standard": "from the standard (Gaussian) init: non-Gaussian beyond noise at the last step",
               "transplant": "from the transplanted spectrum: still non-Gaussian beyond noise at the last step"}
KIND_NAMES = {"gaussian": "Gaussian", "logistic": "logistic"}
OUTPUT_ROLES = ("attn_out", "mlp_out")  # the rest (qkv, mlp_in) read the residual stream
# The comparison of two block wirings names its own verdicts: "agree" is a finding about the
# difference between the architectures, not about the fact itself (which may fail in both).
AGREE, DIFFER = "agree", "differ"
NEAREST_GAUSSIAN = "attention output is the role nearest Gaussian"
STUDY_DEPTH_BAND, STUDY_LAYERS = (10, 20), 16  # the study's toy depths for pythia-1b's 16 blocks


def _row(claim, part, run, role, measure, effect, low, high, verdict, noise=(np.nan, np.nan), resolution=np.nan,
         comparison="interval", detail=""):
    """One verdict row. comparison says how its effect is judged: "band" (a value against the
    baseline draws' prediction band), "intervals" (an interval against other intervals or a
    fixed band), "interval" (an interval against zero), "ratio" (treatment–reference over
    replica–reference difference, interval against 1 + alike_margin), "difference"
    ((treatment − reference) − (replica − reference), interval against zero), "equivalence"
    (a paired difference's 1 − 2α interval against ±margin: agree / differ / undecided)."""
    return {"claim": claim, "part": part, "comparison": comparison, "run": run, "role": role, "measure": measure,
            "detail": detail, "effect": float(effect),
            "low": float(low), "high": float(high), "noise_low": float(noise[0]), "noise_high": float(noise[1]),
            "resolution": float(resolution), "verdict": verdict}


def _values(table, **where) -> pd.Series:
    sel = np.ones(len(table), dtype=bool)
    for k, v in where.items():
        sel &= (table[k] == v).to_numpy()
    return table.loc[sel, "value"]


def _one(table, **where) -> float:
    v = _values(table, **where)
    if len(v) != 1:
        raise KeyError(f"expected one value for {where}, found {len(v)}")
    return float(v.iloc[0])


def excess_w1(measures, draws, level, **where) -> tuple[float, float, float]:
    """Distance of the weights' spectrum to the Gaussian draws beyond what the draws show
    among themselves. -> (excess, low, high): low/high from the draws' prediction band."""
    w = _one(measures, measure="w1_gaussian", **where)
    lo, hi = iv.prediction_band(_values(draws, kind="gaussian", measure="w1_gaussian", **where), level)
    null = float(_values(draws, kind="gaussian", measure="w1_gaussian", **where).mean())
    return w - null, w - hi, w - lo


def baselines_agree(draws: pd.DataFrame, level: float) -> pd.DataFrame:
    """Do the logistic draws' tails differ from the Gaussian draws' beyond noise? Per matrix
    at the last step: Welch interval of mean tail(logistic) - mean tail(Gaussian)."""
    last = draws[draws.step == draws.step.max()]
    rows = []
    for (run, block, role), g in last[last.measure == "tail"].groupby(["run", "block", "role"], sort=False):
        d, lo, hi = iv.welch_interval(g[g.kind == "logistic"]["value"], g[g.kind == "gaussian"]["value"], level)
        rows.append({"run": run, "block": block, "role": role, "difference": d, "low": lo, "high": hi,
                     "differ": bool(lo > 0 or hi < 0)})
    return pd.DataFrame(rows)


def weight_distribution(measures: pd.DataFrame, draws: pd.DataFrame, block: int, level: float,
                        formed_by: float) -> pd.DataFrame:
    """Claim 1 on the configured block, per run and role. Tail and near-zero mass at the
    last step against the draws' prediction band; attention output closest to Gaussian by
    excess W1 distance; formation on training steps (tokens: constant batch)."""
    m, d = measures[measures.block == block], draws[draws.block == block]
    last = int(m.step.max())
    rows = []
    for run in dict.fromkeys(m.run):
        roles = list(dict.fromkeys(m[m.run == run].role))
        at = dict(run=run, step=last, block=block)
        for role in [r for r in roles if r != "attn_out"]:
            # Logistic draws are the same evidence by universality (their spectra differ from the
            # Gaussian draws' only by finite-size noise: r.baseline_agreement shows it), so one
            # baseline is tested; gating logistic rows on that check would count its false
            # positives as evidence.
            for kind in ("gaussian",):
                t = _one(m, measure="tail", role=role, **at)
                draws_tail = _values(d, kind=kind, measure="tail", role=role, **at)
                band = iv.prediction_band(draws_tail, level)
                mean = float(draws_tail.mean())
                rows.append(_row(1, f"tail heavier than {KIND_NAMES[kind]} (σmax/rms)", run, role, f"σmax/rms ÷ {KIND_NAMES[kind]} draws'",
                                 t / mean, t / mean, t / mean, iv.above(t, band), (band[0] / mean, band[1] / mean),
                                 iv.band_resolution(draws_tail, level) / mean, "band"))
            a = _one(m, measure="alpha", role=role, **at)
            draws_alpha = _values(d, kind="gaussian", measure="alpha", role=role, **at)
            band = iv.measure_band(draws_alpha, "alpha", level)
            rows.append(_row(1, "tail heavier than Gaussian (power-law α)", run, role, "α of σ² (smaller: heavier)",
                             a, a, a, iv.below(a, band), band, iv.band_resolution(draws_alpha, level, log=True, side="below"),
                             "band"))
            z = _one(m, measure="near_zero", role=role, **at)
            draws_near = _values(d, kind="gaussian", measure="near_zero", role=role, **at)
            band = iv.measure_band(draws_near, "near_zero", level)
            rows.append(_row(1, "more near-zero singular values than Gaussian", run, role,
                             "fraction below the Gaussian draws' 10% quantile", z, z, z, iv.above(z, band), band,
                             iv.band_resolution(draws_near, level), "band"))
        if "attn_out" in roles:
            ex = {r: excess_w1(m, d, level, role=r, **at) for r in roles}
            others = [r for r in roles if r != "attn_out"]
            a = ex["attn_out"]
            verdict = (iv.HOLDS if all(a[2] < ex[r][1] for r in others) else
                       iv.FAILS if any(ex[r][2] < a[1] for r in others) else iv.UNDECIDED)
            nearest = min(others, key=lambda r: ex[r][0])
            rows.append(_row(1, NEAREST_GAUSSIAN, run, "attn_out",
                             "excess W1 to Gaussian (noise: the next nearest role's interval)",
                             a[0], a[1], a[2], verdict, (ex[nearest][1], ex[nearest][2]), comparison="intervals",
                             detail=f"next nearest: {nearest} {ex[nearest][0]:.3g}"))
        for role in roles:
            rows.append(formation(m, d, run, role, block, level, formed_by))
    return pd.DataFrame(rows)


def formation(m, d, run, role, block, level, formed_by) -> dict:
    """When the spectrum's excess distance to Gaussian covers half its way from
    initialisation to the last step, as a share of training (steps: constant batch, so
    tokens), with the interval the draws' noise allows; and whether it stays there."""
    steps = sorted(set(m[(m.run == run) & (m.role == role)].step))
    ex = np.array([excess_w1(m, d, level, run=run, step=s, block=block, role=role) for s in steps])
    value, lo, hi = ex[:, 0], ex[:, 1], ex[:, 2]
    frac = np.array(steps, dtype=float) / steps[-1]
    part, measure = "shape forms early and then stays", f"share of training to half-way (early: ≤ {formed_by:.0%})"
    if not lo[-1] > hi[0]:  # the final shape is not beyond the initial one's noise
        return _row(1, part, run, role, measure, np.nan, np.nan, np.nan, iv.UNDECIDED, comparison="intervals")
    half = value[0] + 0.5 * (value[-1] - value[0])
    first_possible, first_sure = int(np.argmax(hi >= half)), int(np.argmax(lo >= half)) if (lo >= half).any() else len(steps) - 1
    falls_back = bool((hi[first_sure:] < half).any())
    stays = bool((lo[first_sure:] >= half).all())
    # Late only if a step observed at or past the limit is still surely short of half-way: a
    # gap between checkpoints that straddles the limit (OLMo-1B: 16% then 44.7% of training)
    # cannot tell early from late, and stays undecided.
    late = first_possible > 0 and frac[first_possible - 1] >= formed_by
    if late or falls_back:
        verdict = iv.FAILS
    elif frac[first_sure] <= formed_by and stays:
        verdict = iv.HOLDS
    else:
        verdict = iv.UNDECIDED
    return _row(1, part, run, role, measure, frac[int(np.argmax(value >= half))], frac[first_possible],
                frac[first_sure], verdict, (0.0, formed_by), comparison="intervals")


def residual_paths(fit: pd.DataFrame, depth: pd.DataFrame, n_layers: int, level: float,
                   sigma2: float = 1.0) -> pd.DataFrame:
    """Claim 2 per run and role (configured block, last step): the toy at its best depth
    (chosen on half the toy's seeds, judged on the other half) fits the weights' spectrum
    better than every non-product control (W1 on σ/rms) beyond the draws' spread; and the
    best toy depth lies in the study's band scaled to this model's depth."""
    rows = []
    lo_band, hi_band = (b * n_layers / STUDY_LAYERS for b in STUDY_DEPTH_BAND)
    for (run, role), g in fit.groupby(["run", "role"], sort=False):
        toy = g[g.model == "toy"]["w1"]
        controls = {c: h["w1"] for c, h in g[g.model != "toy"].groupby("model", sort=False)}
        # Intersection-union: the toy must beat every control (each at `level`); any control
        # beating the toy (at a Bonferroni level over the controls) refutes it.
        strict = 1 - (1 - level) / len(controls)
        each = {c: iv.welch_interval(w, toy, level) for c, w in controls.items()}
        each_strict = {c: iv.welch_interval(w, toy, strict) for c, w in controls.items()}
        best = min(each, key=lambda c: each[c][0])
        eff, lo, hi = each[best]
        verdict = (iv.HOLDS if all(v[1] > 0 for v in each.values()) else
                   iv.FAILS if any(v[2] < 0 for v in each_strict.values()) else iv.UNDECIDED)
        se = (hi - lo) / 2 / scipy.stats.norm.ppf(0.5 + level / 2)
        rows.append(_row(2, "toy fits better than non-product controls", run, role,
                         "W1(nearest control) − W1(toy)", eff, lo, hi, verdict,
                         resolution=iv.detectable(se, level), detail=f"nearest control: {best}"))
        r = depth[(depth.run == run) & (depth.role == role)].iloc[0]
        verdict = (iv.HOLDS if lo_band <= r["low"] and r["high"] <= hi_band else
                   iv.FAILS if r["high"] < lo_band or r["low"] > hi_band else iv.UNDECIDED)
        rows.append(_row(2, f"best toy depth in the study's band ({lo_band:.3g}–{hi_band:.3g} of {n_layers})", run, role,
                         "toy depth L on held-out seeds (10–90%)", r["heldout_depth"], r["low"], r["high"],
                         verdict, (lo_band, hi_band), comparison="intervals",
                         detail=f"mean path length {r['heldout_depth'] * sigma2 / (1 + sigma2):.3g}"))
    return pd.DataFrame(rows)


def depth_slope(values: pd.DataFrame, level: float) -> tuple[float, float, float, float]:
    """OLS slope of value on block, the runs averaged within each block first (blocks are
    the independent units; runs of one block share whatever the block is), with its
    Student-t interval on n_blocks - 2 degrees of freedom and the smallest slope that test
    detects with 80% power. values: (run, block, value). -> (slope, low, high, resolution)"""
    per_block = values.groupby("block")["value"].mean().sort_index()
    fit = scipy.stats.linregress(per_block.index.to_numpy(dtype=float), per_block.to_numpy())
    dof = len(per_block) - 2
    half = scipy.stats.t.ppf(0.5 + level / 2, dof) * fit.stderr
    resolution = (scipy.stats.t.ppf(0.5 + level / 2, dof) + scipy.stats.t.ppf(0.8, dof)) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half), float(resolution)


def depth_trends(measures: pd.DataFrame, draws: pd.DataFrame, runs: list[str], level: float) -> pd.DataFrame:
    """Claim 3 at the last step, every block, pooled over the reference and its replicas:
    output matrices' excess distance to Gaussian falls with block; input matrices' tail
    (σmax/rms ratio to the Gaussian draws, and α) does not get lighter with block."""
    last = int(measures.step.max())
    m, d = measures[(measures.step == last) & measures.run.isin(runs)], draws[(draws.step == last) & draws.run.isin(runs)]
    rows = []
    for role in dict.fromkeys(m.role):
        blocks = sorted(set(m[m.role == role].block))
        if role in OUTPUT_ROLES:
            vals = pd.DataFrame([{"run": r, "block": b, "value": excess_w1(m, d, level, run=r, step=last, block=b, role=role)[0]}
                                 for r in runs for b in blocks])
            est, lo, hi, res = depth_slope(vals, level)
            rows.append(_row(3, "output matrix nearer Gaussian in later blocks", "+".join(runs), role,
                             "slope of excess W1 to Gaussian per block", est, lo, hi, iv.negative(lo, hi),
                             resolution=res))
            continue
        ratio = pd.DataFrame([{"run": r, "block": b, "value": _one(m, measure="tail", run=r, block=b, role=role) /
                               float(_values(d, kind="gaussian", measure="tail", run=r, block=b, role=role).mean())}
                              for r in runs for b in blocks])
        alpha = m[(m.measure == "alpha") & (m.role == role)][["run", "block", "value"]]
        for vals, what, measure, heavier in (
                (ratio, "σmax/rms ratio", "slope of σmax/rms ratio to Gaussian per block", iv.positive),
                (alpha, "α", "slope of α per block (smaller α: heavier)", iv.negative)):
            est, lo, hi, res = depth_slope(vals, level)
            verdict = heavier(lo, hi)
            # "Stays or gets heavier": heavier beyond noise holds, lighter beyond noise does not,
            # flat or unclear is undecided ("stays" cannot be confirmed, only not refuted).
            rows.append(_row(3, f"input matrix same or heavier-tailed in later blocks ({what})", "+".join(runs), role, measure,
                             est, lo, hi, verdict, resolution=res))
    out = pd.DataFrame(rows)
    out["blocks"] = len(set(m.block))
    return out


def divergence(distances: pd.DataFrame, run: str) -> pd.Series:
    """A run's relative weight distance from the reference per step, mean over the analysed
    matrices (those with a weight_distance)."""
    mean = dynamics.mean_over_matrices(distances[distances.run == run], "weight_distance")
    return mean.set_index("step")["value"].sort_index()


def diverged_from(distances: pd.DataFrame, treatment: str, share: float) -> int:
    """First step from which the treatment's weights are at least `share` of their final
    relative distance from the reference's (`divergence`): before it the two runs are still
    near copies of their shared initial weights."""
    curve = divergence(distances, treatment)
    return int(curve.index[int(np.argmax(curve.to_numpy() >= share * curve.iloc[-1]))])


def _ratio_test(claim, part, measure, t: np.ndarray, r: np.ndarray, n_boot, level, seed, margin, role="all"):
    """'Alike' as an equivalence test: treatment-reference differences t (units, ...) are at
    most (1 + margin) times the replica-reference differences r (units, ...). Ratio of means,
    bootstrap over units: the whole interval within 1 + margin holds, the whole interval
    beyond it does not hold, else undecided."""
    t, r = t.reshape(len(t), -1), r.reshape(len(r), -1)
    est, lo, hi, se = iv.bootstrap(len(t), lambda i: np.nanmean(t[i]) / np.nanmean(r[i]), n_boot, level, seed)
    verdict = iv.HOLDS if hi <= 1 + margin else iv.FAILS if lo > 1 + margin else iv.UNDECIDED
    return _row(claim, part, "treatment vs replica", role, measure, est, lo, hi, verdict, (0.0, 1 + margin),
                iv.detectable(se, level), "ratio")


def matched_replicas(distances: pd.DataFrame, treatment: str, replicas: list[str]) -> list[str]:
    """The replicas that stand to the reference as the treatment does at the first step:
    sharing its initial weights (distance 0) or not. Only they measure the noise a
    treatment-reference difference is judged against: a treatment that starts from the
    reference's weights is closer to it than any independently initialised run."""
    start = shares_start(distances, treatment)
    if start is None:  # no step 0: no replica can be shown to match
        return []
    return [x for x in replicas if shares_start(distances, x) == start]


SAME_START = 0.1  # relative weight distance at step 0 below which two runs share an initialisation
# (independent initialisations of the same scale are about sqrt(2) apart; rounding is ~1e-7)


def shares_start(distances: pd.DataFrame, run: str) -> bool | None:
    """Whether `run` starts from the reference's initial weights; None when step 0 is not
    analysed, so that it cannot be told."""
    curve = divergence(distances, run)
    if curve.index[0] != 0:
        return None
    return bool(curve.iloc[0] < SAME_START)


def deduplication(measures, distances, activations, roles: dict, block_steps: list, level, n_boot, seed,
                  share: float, margin: float) -> tuple[pd.DataFrame, int]:
    """Claim 4: the treatment differs from the reference no more than a matched replica
    does (`matched_replicas`; none matched: every row undecided), in spectra (W1 on σ/rms),
    per-block norm trajectories, block orderings by norm and residual-stream histograms;
    and the treatment's QKV norms shift more sharply (per share of training) than the
    reference's, beyond the replica's difference. Compared at trained steps only: after the
    first step (where every run is its initialisation) and, for a treatment that shares the
    reference's initial weights, from `diverged_from` on. -> (rows, first compared step)"""
    ref = next(r for r, k in roles.items() if k == "reference")
    treat = next(r for r, k in roles.items() if k == "treatment")
    all_reps = [r for r, k in roles.items() if k == "replica"]
    matched = matched_replicas(distances, treat, all_reps)
    reps, unmatched = matched or all_reps, not matched
    start = max(diverged_from(distances, treat, share), min(block_steps) + 1)
    steps = [s for s in block_steps if s >= start]
    dist = distances[distances.step.isin(steps)]
    rows = []

    def cube(run, measure):  # (blocks, roles x steps)
        return dist[(dist.run == run) & (dist.measure == measure)].pivot_table(
            index="block", columns=["role", "step"], values="value").sort_index()

    t = cube(treat, "w1_spectrum")
    r = np.mean([cube(x, "w1_spectrum").reindex_like(t).to_numpy() for x in reps], axis=0)
    rows.append(_ratio_test(4, "spectra alike", "W1(σ/rms) to reference: treatment ÷ replica", t.to_numpy(), r,
                            n_boot, level, seed, margin))
    fro = measures[(measures.measure == "frobenius") & measures.step.isin(steps)]
    logn = {run: np.log(fro[fro.run == run].pivot_table(index="block", columns=["role", "step"], values="value").sort_index())
            for run in (ref, treat, *reps)}
    t = np.abs(logn[treat] - logn[ref]).to_numpy()
    r = np.mean([np.abs(logn[x] - logn[ref]).reindex_like(logn[treat]).to_numpy() for x in reps], axis=0)
    rows.append(_ratio_test(4, "norm trajectories alike", "|Δ log‖W‖_F| to reference: treatment ÷ replica", t, r,
                            n_boot, level, seed, margin))
    units_t, units_r = [], []
    for role in dict.fromkeys(fro.role):  # units: roles; steps of one role are not independent
        per_t, per_r = [], []
        for step in steps:
            order = {run: logn[run][(role, step)].to_numpy() for run in logn}
            if len(order[ref]) > 2:
                per_t.append(1 - scipy.stats.kendalltau(order[treat], order[ref]).statistic)
                per_r.append(np.mean([1 - scipy.stats.kendalltau(order[x], order[ref]).statistic for x in reps]))
        if per_t:
            units_t.append(per_t)
            units_r.append(per_r)
    if units_t:
        rows.append(_ratio_test(4, "block orderings alike", "1 − Kendall τ of block order by norm: treatment ÷ replica",
                                np.array(units_t), np.array(units_r), n_boot, level, seed, margin, role="by role"))
    if activations:
        from .activations import js_distance

        by = {(a["run"], a["step"]): a["hist"] for a in activations}
        act_steps = [s for s in sorted({s for _, s in by}) if s >= start and all((x, s) in by for x in (ref, treat, *reps))]
        if act_steps:
            n_blocks = by[(ref, act_steps[0])].shape[0]
            t = np.array([[js_distance(by[(treat, s)][b], by[(ref, s)][b]) for s in act_steps] for b in range(n_blocks)])
            r = np.array([[np.mean([js_distance(by[(x, s)][b], by[(ref, s)][b]) for x in reps]) for s in act_steps]
                          for b in range(n_blocks)])
            rows.append(_ratio_test(4, "residual-stream histograms alike", "JS distance to reference: treatment ÷ replica",
                                    t, r, n_boot, level, seed, margin, role="all blocks"))
    qkv = measures[(measures.measure == "frobenius") & (measures.role == "qkv") & measures.step.isin(block_steps)]
    if len(qkv):
        s = {run: sharpness(qkv[qkv.run == run], start) for run in (ref, treat, *reps)}
        blocks = s[ref].index
        d = (s[treat] - s[ref]).reindex(blocks).to_numpy() - \
            np.mean([(s[x] - s[ref]).reindex(blocks).to_numpy() for x in reps], axis=0)
        est, lo, hi, se = iv.bootstrap(len(blocks), lambda i: d[i].mean(), n_boot, level, seed)
        rows.append(_row(4, "treatment QKV norms shift more sharply", "treatment vs replica", "qkv",
                         "(treatment − reference) − (replica − reference) steepest norm change per share of training ÷ range",
                         est, lo, hi, iv.positive(lo, hi), resolution=iv.detectable(se, level), comparison="difference"))
    out = pd.DataFrame(rows)
    out["detail"] = f"judged against {', '.join(reps)}"
    if unmatched:  # the noise floor does not match the treatment's design: nothing can be decided
        out["verdict"] = iv.UNDECIDED
        out["detail"] = (f"undecided: no replica shares the treatment's relation to the reference's initial weights "
                         f"(shown against {', '.join(reps)} for reference only)")
    return out, start


def sharpness(fro: pd.DataFrame, start: int) -> pd.Series:
    """Per block: the steepest change of the norm trajectory between checkpoints at or after
    `start`, per share of training, as a share of that stretch's range (1: the whole range
    covered at the pace of one training run). Steps, not checkpoint indices, so
    uneven checkpoint spacing does not leak in."""
    out = {}
    for block, g in fro.groupby("block"):
        g = g.sort_values("step")
        x, t = g["value"].to_numpy(), g["step"].to_numpy(dtype=float) / g["step"].max()
        keep = g["step"].to_numpy() >= start
        span = np.ptp(x[keep]) or 1.0
        slopes = np.abs(np.diff(x[keep])) / np.diff(t[keep])
        out[block] = float(slopes.max() / span) if len(slopes) else np.nan
    return pd.Series(out).sort_index()


def _interval_text(row) -> str:
    """One row's evidence in a few characters: its interval, or its value against the band."""
    if not np.isfinite(row["effect"]):
        return f"{row['role']} —"
    if row.get("comparison") == "count":
        return f"{row['role']} {int(row['effect'])} of {int(row['noise_high'])} sizes"
    if row["low"] == row["high"]:
        return f"{row['role']} {row['effect']:.3g} vs [{row['noise_low']:.3g}, {row['noise_high']:.3g}]"
    return f"{row['role']} [{row['low']:.3g}, {row['high']:.3g}]"


def summary(table: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """One row per claim part: how many of its rows hold, do not hold or are undecided, the
    range of effects, the reference run's intervals (or, for rows that pool or compare runs,
    every row's), and the part's verdict (all rows agree: that verdict; else mixed)."""
    rows = []
    for (claim, part), g in table.groupby(["claim", "part"], sort=False):
        counts = g["verdict"].value_counts()
        verdicts = set(g["verdict"])
        e = g["effect"].dropna()
        effect = "—" if e.empty else f"{e.min():.3g}" + (f" – {e.max():.3g}" if e.nunique() > 1 else "")
        primary = g[g["run"] == reference] if reference is not None and (g["run"] == reference).any() else g
        rows.append({"claim": claim, "part": part, "measure": g["measure"].iloc[0], "effect": effect,
                     "intervals": "; ".join(_interval_text(x) for _, x in primary.iterrows()),
                     "holds": int(counts.get(iv.HOLDS, 0)), "does not hold": int(counts.get(iv.FAILS, 0)),
                     "undecided": int(counts.get(iv.UNDECIDED, 0)),
                     "verdict": verdicts.pop() if len(verdicts) == 1 else "mixed"})
    return pd.DataFrame(rows)


PUBLISHED_PARTS = {  # claim 3 on the study's published Pythia statistics, by whether a role is an output matrix
    True: "output matrix lighter-tailed in later blocks (Pythia, published max/std proxy)",
    False: "input matrix same or heavier-tailed in later blocks (Pythia, published max/std proxy)",
    "contrast": "output minus input matrices' tail falls with depth (Pythia, published max/std proxy)",
}
# A proxy's verdict is about the entries' upper tail, not the spectrum: named as such wherever shown.
PROXY_LABELS = {iv.HOLDS: "proxy consistent", iv.FAILS: "proxy inconsistent", iv.UNDECIDED: "proxy undecided"}
# Smallest effect of interest, fixed before looking: the tail ratio moving by a tenth of its
# mean (over blocks) from the first block to the last. Power is stated against it.
PUBLISHED_SESOI = 0.10
POWER_SIMS = 200


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """OLS slope of each row of y (..., n) on x (n,)."""
    xc = x - x.mean()
    return (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)


def _lag1(r: np.ndarray) -> float:
    r = r - r.mean()
    return float((r[1:] * r[:-1]).sum() / (r * r).sum()) if (r * r).sum() > 0 else 0.0


def _ar1(phi: float, n: int, draws: int, rng) -> np.ndarray:
    """Stationary AR(1) series of unit marginal variance. -> (draws, n)"""
    e = rng.standard_normal((draws, n)) * np.sqrt(1 - phi**2)
    z = np.empty((draws, n))
    z[:, 0] = rng.standard_normal(draws)
    for k in range(1, n):
        z[:, k] = phi * z[:, k - 1] + e[:, k]
    return z


def ar1_noise(y: np.ndarray) -> tuple[float, float]:
    """AR(1) parameters of the noise in y, unaffected by a linear trend: from the first
    differences, whose lag-1 autocorrelation is −(1 − φ)/2 and whose variance is
    2σ²(1 − φ). φ is biased low in short series: 4/n is added (calibrated by simulation
    so that order_test's false-positive rate stays at or below its level for φ up to 0.6
    and 6–24 blocks), and it is kept in [0, 0.95]. -> (φ, marginal sd σ)"""
    d = np.diff(np.asarray(y, dtype=np.float64))
    phi = float(np.clip(1 + 2 * _lag1(d) + 4 / len(y), 0.0, 0.95))
    return phi, float(d.std(ddof=1) / np.sqrt(2 * (1 - phi)))


def order_test(x, y, level: float, draws: int, seed: int) -> dict:
    """Trend of y over blocks in depth order x, judged against two nulls of no trend: the
    block order permuted (exact when blocks are exchangeable; every order for up to 7
    blocks) and AR(1) series with the blocks' own lag-1 autocorrelation (estimated under
    the null from y in depth order, bias-corrected) and spread (neighbouring blocks are
    alike, which a permutation breaks: alone it rejects up to ~25% of trend-free AR(1)
    series at φ = 0.5). The AR(1) noise is estimated from the blocks' differences
    (`ar1_noise`), so a trend is not mistaken for autocorrelation. p is the larger of the
    two; the interval is the slope ± the wider null's `level` quantile of |slope|.
    -> {slope, low, high, p, p_perm, p_ar, phi}"""
    import itertools
    import math

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, rng = len(x), np.random.default_rng(seed)
    est = float(_slopes(x, y))
    every = math.factorial(n) <= 5040
    order = np.array(list(itertools.permutations(range(n)))) if every else np.array([rng.permutation(n) for _ in range(draws)])
    perm = np.abs(_slopes(x, y[order]))
    phi, sd = ar1_noise(y)
    ar = np.abs(_slopes(x, sd * _ar1(phi, n, draws, rng)))
    hit = perm >= abs(est) * (1 - 1e-9)
    p_perm = float(hit.mean()) if every else float((1 + hit.sum()) / (1 + len(perm)))  # every order holds the identity
    p_ar = float((1 + np.sum(ar >= abs(est))) / (1 + draws))
    h = max(float(np.quantile(perm, level)), float(np.quantile(ar, level)))
    return {"slope": est, "low": est - h, "high": est + h, "p": max(p_perm, p_ar), "p_perm": p_perm, "p_ar": p_ar,
            "phi": phi}


def order_verdict(t: dict, sign: int, level: float) -> str:
    """Three-valued: the claimed direction (sign) beyond both nulls holds, the opposite does not."""
    if not t["p"] <= 1 - level:
        return iv.UNDECIDED
    return iv.HOLDS if np.sign(t["slope"]) == sign else iv.FAILS


def order_power(x, y, effect: float, level: float, sims: int, draws: int, seed: int) -> float:
    """Share of simulated data sets — a trend of `effect` over x plus AR(1) noise with y's
    own autocorrelation and spread (`ar1_noise`) — that order_test
    decides in effect's direction: its power against that effect under the noise model the
    test allows for."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    phi, sd = ar1_noise(y)
    rng = np.random.default_rng(seed)
    noise = sd * _ar1(phi, len(x), sims, rng)
    hits = [order_verdict(order_test(x, effect * x + e, level, draws, seed + 1 + k), int(np.sign(effect)), level) == iv.HOLDS
            for k, e in enumerate(noise)]
    return float(np.mean(hits))


def published_depth_trends(tail: pd.DataFrame, level: float, n_perm: int, seed: int,
                           pooled_name: str = "", power_sims: int = POWER_SIMS) -> pd.DataFrame:
    """Claim 3 on entry statistics: per model and role, the OLS slope of the tail proxy
    (weight_stats.tail_ratio) on relative depth (block / (blocks − 1): the change from the
    first block to the last), at the model's last step and averaged over its steps, judged by
    order_test (block-order permutation and AR(1) nulls); its verdict without the first and
    without the last block; and its power against PUBLISHED_SESOI of the model's mean tail
    ratio. Output matrices: a falling tail holds; input matrices: a rising one holds, a
    falling one does not ("stays the same" cannot be confirmed). Also the study's contrast
    within a model: per block the output matrices' mean tail minus the input matrices',
    whose slope should fall. Where `pooled_name` is given, per part and time a row across
    models (`across_models`). tail: (model, role, step, block, value)."""
    rows = []
    whens = ("last step", "averaged over training")

    def per_block(g, when):
        g = g[g["step"] == g["step"].max()] if when == "last step" else g
        return g.groupby("block")["value"].mean().sort_index(), sorted(set(g["step"]))

    def judge(model, role, part, sign, measure, y: pd.Series, steps, when, k):
        x = y.index.to_numpy(dtype=float) / max(y.index.max(), 1)
        v, s = y.to_numpy(), seed + 1000 * k
        t = order_test(x, v, level, n_perm, s)
        sesoi = sign * PUBLISHED_SESOI * float(np.abs(v).mean() if role != "out − in" else
                                               tail_mean[model])
        pw = order_power(x, v, sesoi, level, power_sims, min(n_perm, 200), s) if power_sims else np.nan
        drop = {name: order_verdict(order_test(x[sl], v[sl], level, n_perm, s), sign, level)
                for name, sl in (("first", slice(1, None)), ("last", slice(None, -1)))}
        row = _row(3, part, model, role, measure, t["slope"], t["low"], t["high"], order_verdict(t, sign, level),
                   resolution=abs(sesoi),
                   detail=f"{when} ({steps[-1]}" + (")" if len(steps) == 1 else f"; {len(steps)} steps from {steps[0]})")
                   + f", {len(x)} blocks")
        return {**row, "p": t["p"], "p_perm": t["p_perm"], "p_ar": t["p_ar"], "phi": t["phi"], "power": pw,
                "without_first": drop["first"], "without_last": drop["last"], "when": when}

    tail_mean = tail.groupby("model")["value"].mean().to_dict()
    k = 0
    for role in dict.fromkeys(tail["role"]):
        out = role in OUTPUT_ROLES
        for when in whens:
            for model, g in tail[tail["role"] == role].groupby("model", sort=False):
                y, steps = per_block(g, when)
                rows.append(judge(model, role, PUBLISHED_PARTS[out], -1 if out else 1,
                                  "slope of max/std tail ratio over relative depth", y, steps, when, k := k + 1))
    for when in whens:
        for model, g in tail.groupby("model", sort=False):
            by = {role: per_block(h, when) for role, h in g.groupby("role")}
            ins = [r for r in by if r not in OUTPUT_ROLES]
            outs = [r for r in by if r in OUTPUT_ROLES]
            if ins and outs:
                d = sum(by[r][0] for r in outs) / len(outs) - sum(by[r][0] for r in ins) / len(ins)
                rows.append(judge(model, "out − in", PUBLISHED_PARTS["contrast"], -1,
                                  "slope over relative depth of (output − input) mean tail ratio, paired by block",
                                  d.dropna(), by[ins[0]][1], when, k := k + 1))
    out = pd.DataFrame(rows)
    if pooled_name and out["run"].nunique() > 1:
        pooled = [across_models(g, pooled_name, level) for _, g in out.groupby(["part", "role", "when"], sort=False)]
        out = pd.concat([out, pd.DataFrame(pooled)], ignore_index=True)
    return out


def across_models(rows: pd.DataFrame, name: str, level: float) -> dict:
    """One part, role and time across models, as an intersection-union test: "holds for
    every size" only when every model's own test holds at `level` (each at level, so the
    whole at level too); "does not hold" when any model contradicts the claim at the
    Bonferroni level (1 − level) / models (the chance that any of them does so by chance is
    at most 1 − level); else undecided. Estimated: how many models confirm the claimed
    direction, and how many contradict it. -> a verdict row"""
    m = len(rows)
    confirm = int((rows["verdict"] == iv.HOLDS).sum())
    against = rows[(rows["verdict"] == iv.FAILS) & (rows["p"] <= (1 - level) / m)]
    verdict = iv.FAILS if len(against) else iv.HOLDS if confirm == m else iv.UNDECIDED
    first = rows.iloc[0]
    detail = (f"{first['when']}; {confirm} of {m} sizes confirm at {level:.0%}, {len(against)} contradict at the "
              f"Bonferroni level {(1 - level) / m:.2g}"
              + (f" ({', '.join(against['run'])})" if len(against) else ""))
    row = _row(3, first["part"], name, first["role"], "sizes (of all) whose own test confirms the claimed direction",
               confirm, confirm, confirm, verdict, noise=(0, m), comparison="count", detail=detail)
    return {**row, "p": np.nan, "p_perm": np.nan, "p_ar": np.nan, "phi": np.nan, "power": np.nan,
            "without_first": "", "without_last": "", "when": first["when"], "contradict": len(against)}




def holm(p) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error) of p (n,); NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adj = np.maximum.accumulate([min(1.0, (m - k) * p[i]) for k, i in enumerate(order)]) if m else []
    out[order] = adj
    return out


def grid_step(values, grid) -> float:
    """The resolution of a measure read off a grid (checkpoint shares, integer toy depths):
    the widest grid cell next to any observed value (a value on the grid stands for anything
    within its neighbouring cells). NaN without a grid."""
    if grid is None or len(grid) < 2:
        return np.nan
    g = np.unique(np.asarray(grid, dtype=float))
    gaps = np.diff(g)
    cells = []
    for v in np.asarray(values, dtype=float):
        i = int(np.argmin(abs(g - v)))
        cells += [gaps[j] for j in (i - 1, i) if 0 <= j < len(gaps)]
    return float(max(cells)) if cells else np.nan


def twin_power(se: float, dof: int, margin: float, level: float) -> tuple[float, float]:
    """Power of the paired tests, from the noncentral t (scipy.stats.nct) with the measured
    standard error se on dof degrees of freedom. -> (power of the equivalence test (TOST at
    1 - level per side) to show agreement when the true difference is 0 (a lower bound:
    1 - both sides' misses), the smallest |d| the one-sided test of |d| > margin at 1 - level
    detects with 80% power, in the measure's units)"""
    if not (np.isfinite(se) and se > 0 and dof >= 1):
        return np.nan, np.nan
    t = scipy.stats.t.ppf(level, dof)
    agree = max(0.0, 1 - 2 * scipy.stats.nct.cdf(t, dof, margin / se)) if margin > 0 else 0.0
    ncp = scipy.optimize.brentq(lambda c: scipy.stats.nct.sf(t, dof, c) - 0.8, 0.0, 1e4)
    return float(agree), float(margin + ncp * se)


def architectures(rows: pd.DataFrame, level: float, pairs: list[tuple[str, str]],
                  grids: dict | None = None) -> pd.DataFrame:
    """Do the two block wirings agree on each measure of claims 1–3? rows: per-run verdict
    rows (compute's architecture_runs, scope "run"); pairs: (first-architecture run, its
    twin of the second architecture), twins sharing seed, initial weights and data order;
    grids: {measure: the grid its values lie on} for measures read off a grid.

    Per claim part and matrix, paired: d_i = twin's effect − first's (claim 1's "nearest
    Gaussian": the contrast, attn_out's excess W1 minus the next-nearest role's), d = mean
    d_i, SE = SD(d_i)/√n_pairs on n_pairs − 1 degrees of freedom, floored at the grid's
    rounding (h·√(2/12)/√n_pairs, cell width h) for gridded measures. The margin Δ is fixed
    from the first architecture's runs alone, before the second is looked at: the distance
    from their mean effect to the nearest edge of the claim's decision band (its noise band;
    0 for intervals judged against 0) — the shift that would flip the first's verdict.
    agree: the 1 − 2α interval of d (α = 1 − level) lies inside ±Δ (TOST); differ: |d| > Δ
    one-sided at α after Holm's correction over every row of the table (p_holm); undecided
    otherwise, and where the spread is not estimable (fewer than two pairs, or no spread
    and no grid)."""
    grids = grids or {}
    rows = rows[rows["scope"] == "run"]
    cols = ["claim", "part", "run", "role", "measure", "effect", "low", "high", "verdict"]
    labels = list(dict.fromkeys(rows["architecture"]))
    if len(labels) != 2 or not pairs:
        return pd.DataFrame(columns=cols)
    first, second = labels
    alpha = 1 - level
    out = []
    for (claim, part), g in rows.groupby(["claim", "part"], sort=False):
        for role, h in g.groupby("role", sort=False):
            by_run = {x["run"]: x for _, x in h.iterrows()}
            twins = [(by_run[a], by_run[b]) for a, b in pairs if a in by_run and b in by_run]
            contrast = part == NEAREST_GAUSSIAN

            def value(x):
                return x["effect"] - (x["noise_low"] + x["noise_high"]) / 2 if contrast else x["effect"]

            e1 = np.array([value(a) for a, _ in twins], dtype=float)
            e2 = np.array([value(b) for _, b in twins], dtype=float)
            ok = np.isfinite(e1) & np.isfinite(e2)
            e1, e2 = e1[ok], e2[ok]
            n = len(e1)
            measure = h["measure"].iloc[0]
            first_rows = [a for a, _ in twins]
            # Δ from the first architecture's runs only.
            m1 = float(np.mean(e1)) if n else np.nan
            bands = np.array([[x["noise_low"], x["noise_high"]] for x in first_rows], dtype=float).reshape(-1, 2)
            edges = [0.0] if contrast or not np.isfinite(bands).all() else list(bands.mean(axis=0))
            margin = float(min(abs(m1 - x) for x in edges)) if n else np.nan
            d_i = e2 - e1
            d = float(d_i.mean()) if n else np.nan
            dof = n - 1
            sd = float(d_i.std(ddof=1)) if n >= 2 else np.nan
            step = grid_step(np.concatenate([e1, e2]), grids.get(measure))
            floor = step * np.sqrt(2 / 12) / np.sqrt(n) if np.isfinite(step) and n else 0.0
            se = max(sd / np.sqrt(n), floor) if n >= 2 else np.nan
            estimable = n >= 2 and np.isfinite(se) and se > 0
            if estimable:
                t_eq = scipy.stats.t.ppf(1 - alpha, dof)
                low, high = d - t_eq * se, d + t_eq * se
                p = float(scipy.stats.t.sf((abs(d) - margin) / se, dof))
            else:
                low = high = p = np.nan
            power, resolution = twin_power(se, dof, margin, level) if estimable else (np.nan, np.nan)
            own = {x: ", ".join(r["verdict"] for r in rs) for x, rs in
                   ((first, [a for a, _ in twins]), (second, [b for _, b in twins]))}
            detail = (f"{n} pairs; {first}: {own[first]}; {second}: {own[second]}"
                      + (f"; SE floored at the grid's rounding (cell {step:.3g})" if estimable and se == floor and floor > 0 else "")
                      + ("" if estimable else "; spread not estimable"))
            row = _row(claim, part, f"{second} − {first}", role,
                       measure + (" − next nearest role's (contrast)" if contrast else ""), d, low, high,
                       AGREE if estimable and -margin < low and high < margin else iv.UNDECIDED,
                       (-margin, margin), resolution, "equivalence", detail)
            out.append({**row, "p": p, "power_agree": power, "pairs": n, "se": se, "dof": dof})
    out = pd.DataFrame(out)
    out["p_holm"] = holm(out["p"])
    differ = (out["p_holm"] <= alpha) & (out["verdict"] != AGREE)
    out.loc[differ, "verdict"] = DIFFER
    return out


def architecture_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of the wiring comparison, counts only (the rows' measures have
    incommensurable units): agree / differ (after Holm) / undecided, in the columns
    tables.claims_markdown reads."""
    rows = []
    for claim, g in table.groupby("claim", sort=True):
        c = g["verdict"].value_counts()
        a, f, u = (int(c.get(x, 0)) for x in (AGREE, DIFFER, iv.UNDECIDED))
        verdict = DIFFER if f else AGREE if a == len(g) else iv.UNDECIDED if u == len(g) else "mixed"
        rows.append({"claim": claim, "part": f"claim {claim}: the two wirings agree on its measures",
                     "measure": f"{len(g)} paired differences (claim part × matrix) against their margins",
                     "effect": "—", "intervals": "—", AGREE: a, DIFFER: f, iv.UNDECIDED: u,
                     "counts": f"{a} agree / {f} differ / {u} undecided", "verdict": verdict})
    return pd.DataFrame(rows)


def _per_seed_area(curves: pd.DataFrame, grid) -> pd.DataFrame:
    """Per kind and seed: the mean loss over the steps of `grid` (the area under the loss
    curve per step: lower is faster on average). -> (kind, seed, value)"""
    g = curves[curves["step"].isin(list(grid))]
    mean = g.groupby(["kind", "seed"], sort=False)["loss"].agg(lambda v: v.to_numpy().mean())  # NaN stays NaN
    return mean.rename("value").reset_index()


def detectable(se: float, dof: float, level: float, power: float = 0.8) -> float:
    """The smallest |effect| a two-sided t test at `level` detects with `power`, from the
    noncentral t (scipy.stats.nct) with standard error se on dof degrees of freedom: an
    estimate where se itself is measured on few samples. NaN without a spread."""
    if not (np.isfinite(se) and se > 0 and np.isfinite(dof) and dof > 0):
        return np.nan
    t = scipy.stats.t.ppf(0.5 + level / 2, dof)

    def hit(c):  # power at noncentrality c, minus the target; nct gives NaN far out, where power is 1
        p = scipy.stats.nct.sf(t, dof, c) + scipy.stats.nct.cdf(-t, dof, c)
        return (p if np.isfinite(p) else 1.0) - power

    hi = t + 1.0
    while hit(hi) < 0:
        hi *= 2
    return float(scipy.optimize.brentq(hit, 0.0, hi) * se)


def init_faster(curves: pd.DataFrame, grid, level: float, standard: str = "standard") -> pd.DataFrame:
    """Question 7 per init kind: does it reach lower held-out loss than the standard init
    through training? Effect: the standard init's mean loss over the evenly spaced steps
    `grid` minus the kind's (nats; positive: faster; lower on average over training, which
    counts a head start as being faster, as steps saved to any loss do), means over seeds,
    with its Welch interval over seeds (the noise: each init's seed-to-seed spread, the
    standard's included; a seed shares embeddings and data order across kinds, so pairing
    would be positively correlated and Welch, which ignores it, errs on the wide side).
    Verdict after Holm's correction over the kinds: faster (holds) where the Holm-adjusted
    two-sided Welch p < 1 − level and the effect is positive, slower (does not hold) where
    it is negative, else undecided; no measured spread is undecided. Resolution: the
    smallest |effect| detected with 80% power at Holm's first step, α/m (noncentral t with
    the measured SE). A kind whose loss is not finite (training diverged) does not hold.
    curves: (kind, seed, step, loss), held-out."""
    area = _per_seed_area(curves, grid)
    base = area[area["kind"] == standard]["value"].to_numpy()
    rows, p = [], []
    for kind, g in area[area["kind"] != standard].groupby("kind", sort=False):
        x = g["value"].to_numpy()
        measure = "held-out loss, standard − this init, mean over training (nats)"
        if not np.isfinite(x).all():
            rows.append({**_row(7, FASTER, kind, "all", measure, np.nan, np.nan, np.nan, iv.FAILS,
                                detail="training diverged (non-finite loss)"), "se": np.nan, "dof": np.nan,
                         "seeds": len(x), "sd_standard": float(base.std(ddof=1)), "p": np.nan, "p_holm": np.nan})
            p.append(np.nan)
            continue
        d, lo, hi = iv.welch_interval(base, x, level)
        va, vb = base.var(ddof=1) / len(base), x.var(ddof=1) / len(x)
        se = float(np.sqrt(va + vb))
        dof = float((va + vb) ** 2 / (va**2 / (len(base) - 1) + vb**2 / (len(x) - 1))) if se > 0 else np.nan
        p.append(float(2 * scipy.stats.t.sf(abs(d) / se, dof)) if se > 0 else np.nan)
        rows.append({**_row(7, FASTER, kind, "all", measure, d, lo, hi, iv.UNDECIDED, resolution=np.nan,
                            detail=f"{len(base)} + {len(x)} seeds, Welch df {dof:.2g}" if se > 0 else
                            "no spread over seeds measured: undecided"),
                     "se": se, "dof": dof, "seeds": len(x), "sd_standard": float(base.std(ddof=1))})
    # A p-value exists exactly where the seeds spread. The power stated is that of Holm's first
    # (strictest) step, α/m: what the family's verdict can detect in its most favourable row.
    m = max(1, int(np.isfinite(p).sum()))
    for row, pv, pa in zip(rows, p, holm(p)):
        if np.isfinite(pv):
            row.update(p=pv, p_holm=pa, resolution=detectable(row["se"], row["dof"], 1 - (1 - level) / m),
                       verdict=iv.UNDECIDED if pa >= 1 - level else iv.HOLDS if row["effect"] > 0 else iv.FAILS)
            row["detail"] += f", Holm p {pa:.2g}"
    return pd.DataFrame(rows)


def init_family(faster: pd.DataFrame) -> str:
    """Question 7 as the readers asked it (can an init drawn from the learned distribution
    train faster?), from init_faster's rows: holds when any kind holds (each judged after
    Holm's correction over the kinds), does not hold when every kind is slower beyond noise,
    else undecided."""
    v = set(faster["verdict"])
    return iv.HOLDS if iv.HOLDS in v else iv.FAILS if v == {iv.FAILS} else iv.UNDECIDED


def steps_to(curve_steps, losses, target: float) -> float:
    """The first step at which a loss curve reaches `target`, linearly interpolated between
    the recorded steps; NaN when it never does."""
    s, y = np.asarray(curve_steps, dtype=float), np.asarray(losses, dtype=float)
    hit = np.flatnonzero(y <= target)
    if not len(hit):
        return np.nan
    i = int(hit[0])
    if i == 0:
        return float(s[0])
    return float(s[i - 1] + (y[i - 1] - target) / (y[i - 1] - y[i]) * (s[i] - s[i - 1]))


def init_steps(curves: pd.DataFrame, level: float, standard: str = "standard") -> tuple[pd.DataFrame, float]:
    """Steps each init needs to reach the standard init's final held-out loss, per seed, and
    per kind the mean over seeds with its Student-t interval (only where every seed reaches
    it; `reached` counts those that do). The target is the highest of the standard seeds'
    final losses, which every standard seed reaches by its last step, so the standard row is
    a measured baseline with its own seed spread, not cut in half by its own mean.
    -> (per kind: kind, steps, low, high, reached, seeds; the target loss)"""
    last = curves["step"].max()
    target = float(curves[(curves["kind"] == standard) & (curves["step"] == last)]["loss"].max())
    rows = []
    for kind, g in curves.groupby("kind", sort=False):
        per = [steps_to(h["step"], h["loss"], target) for _, h in
               ((seed, h.sort_values("step")) for seed, h in g.groupby("seed", sort=False))]
        x = np.array(per, dtype=float)
        ok = np.isfinite(x)
        if ok.all() and len(x) >= 2:
            half = scipy.stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
            m, lo, hi = float(x.mean()), float(x.mean() - half), float(x.mean() + half)
        else:
            m = lo = hi = np.nan
        rows.append({"kind": kind, "steps": m, "low": lo, "high": hi, "reached": int(ok.sum()), "seeds": len(x),
                     "per_seed": "; ".join("—" if not np.isfinite(v) else f"{v:.3g}" for v in x)})
    return pd.DataFrame(rows), target


def init_shape(measures: pd.DataFrame, draws: pd.DataFrame, level: float) -> pd.DataFrame:
    """Whether the spectra are non-Gaussian beyond noise at the last step, from the standard
    init (a Gaussian start) and from the transplanted spectrum: per kind (standard,
    transplant), seed and role at the last step,
    the spectrum's W1 distance to the Gaussian draws against those draws' own prediction
    band (as claim 1 judges it): above the band holds, below it does not hold, inside it
    is undecided. measures/draws: measures.tables of the init runs with kind and seed columns."""
    last = int(measures["step"].max())
    rows = []
    for kind, part in SHAPE_PARTS.items():
        m = measures[(measures["kind"] == kind) & (measures["step"] == last)]
        for (seed, role), g in m.groupby(["seed", "role"], sort=False):
            d = draws[(draws["kind"] == kind) & (draws["seed"] == seed) & (draws["step"] == last) &
                      (draws["role"] == role) & (draws["draw_kind"] == "gaussian") & (draws["measure"] == "w1_gaussian")]
            w = float(g[g["measure"] == "w1_gaussian"]["value"].iloc[0])
            band = iv.prediction_band(d["value"], level)
            rows.append(_row(7, part, f"{kind} seed {seed}", role, "W1 to Gaussian draws (σ/rms), last step", w, w, w,
                             iv.above(w, band), band, iv.band_resolution(d["value"], level), "band"))
    return pd.DataFrame(rows)

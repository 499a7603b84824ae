"""Every verdict rule can come out each way (holds, does not hold, undecided) on data built
to land on each side of its noise."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analysis import intervals as iv
from analysis import verdicts

RNG = np.random.default_rng(0)
K = 8  # draws


def synthetic(tail: float, alpha: float, near: float, w1: dict, roles=("qkv", "attn_out"), noise=0.01):
    """measures/draws tables for one run, block 0, steps w1 gives: Gaussian draws centred on
    tail 1.5, alpha 8, near_zero 0.1, w1 0.05 with spread `noise`; the weights' values as given
    (w1: {step: excess W1 for every role}; attn_out gets half of it)."""
    m, d = [], []
    for step, ex in w1.items():
        for role in roles:
            e = ex / 2 if role == "attn_out" else ex
            ids = ("run", step, 0, role)
            m += [(*ids, "tail", tail), (*ids, "alpha", alpha), (*ids, "near_zero", near), (*ids, "w1_gaussian", 0.05 + e)]
            for kind in ("gaussian", "logistic"):
                for k in range(K):
                    z = RNG.standard_normal(4) * noise
                    d += [(*ids, kind, k, "tail", 1.5 + z[0]), (*ids, kind, k, "alpha", 8 + 10 * z[1]),
                          (*ids, kind, k, "near_zero", 0.1 + z[2]), (*ids, kind, k, "w1_gaussian", 0.05 + z[3])]
    cols = ["run", "step", "block", "role"]
    return (pd.DataFrame(m, columns=[*cols, "measure", "value"]),
            pd.DataFrame(d, columns=[*cols, "kind", "draw", "measure", "value"]))


def verdict(table, part, role="qkv"):
    row = table[table.part.str.startswith(part) & (table.role == role)]
    assert len(row) == 1, (part, table[["part", "role"]])
    return row["verdict"].iloc[0]


RISING_EARLY = {0: 0.0, 10: 0.5, 20: 0.6, 100: 0.6}


@pytest.mark.parametrize("tail,alpha,near,expected", [
    (2.0, 3.0, 0.3, iv.HOLDS),  # beyond the draws' band on the claimed side
    (1.0, 20.0, 0.0, iv.FAILS),  # beyond it on the other side
    (1.5, 8.0, 0.1, iv.UNDECIDED),  # inside the band
])
def test_claim1_tail_and_near_zero_parts_follow_the_draws_band(tail, alpha, near, expected):
    m, d = synthetic(tail, alpha, near, RISING_EARLY)
    t = verdicts.weight_distribution(m, d, 0, 0.95, 0.25)
    assert verdict(t, "tail heavier than Gaussian (σmax") == expected
    assert verdict(t, "tail heavier than Gaussian (power-law") == expected
    assert verdict(t, "more near-zero") == expected


def test_claim1_logistic_is_never_counted_as_a_second_piece_of_evidence():
    m, d = synthetic(2.0, 3.0, 0.3, RISING_EARLY)
    d.loc[(d.kind == "logistic") & (d.measure == "tail"), "value"] += 0.3  # even where it differs
    t = verdicts.weight_distribution(m, d, 0, 0.95, 0.25)
    assert not t.part.str.contains("logistic").any()
    agree = verdicts.baselines_agree(d, 0.95)  # reported instead
    assert agree["differ"].all()


@pytest.mark.parametrize("curve,expected", [
    (RISING_EARLY, iv.HOLDS),
    ({0: 0.0, 10: 0.0, 30: 0.0, 100: 0.6}, iv.FAILS),  # short of half-way at 30% > 25%: forms late
    ({0: 0.0, 10: 0.0, 20: 0.0, 100: 0.6}, iv.UNDECIDED),  # the gap 20%..100% straddles the 25% limit
    ({0: 0.0, 10: 0.0, 25: 0.0, 100: 0.6}, iv.FAILS),  # still short at the limit itself
    ({0: 0.0, 10: 0.6, 20: 0.0, 100: 0.6}, iv.FAILS),  # forms early, falls back beyond noise
    ({0: 0.0, 10: 0.0, 20: 0.0, 100: 0.0}, iv.UNDECIDED),  # never leaves the noise
])
def test_formation_is_judged_on_share_of_training(curve, expected):
    m, d = synthetic(2.0, 3.0, 0.3, curve)
    t = verdicts.weight_distribution(m, d, 0, 0.95, 0.25)
    assert verdict(t, "shape forms early") == expected


@pytest.mark.parametrize("attn_share,expected", [(0.5, iv.HOLDS), (4.0, iv.FAILS), (1.0, iv.UNDECIDED)])
def test_attention_output_nearest_gaussian_compares_intervals(attn_share, expected):
    m, d = synthetic(2.0, 3.0, 0.3, RISING_EARLY, noise=0.001)
    sel = (m.role == "attn_out") & (m.measure == "w1_gaussian") & (m.step == 100)
    m.loc[sel, "value"] = 0.05 + 0.6 * attn_share
    t = verdicts.weight_distribution(m, d, 0, 0.95, 0.25)
    assert verdict(t, "attention output", "attn_out") == expected


def depth_tables(slope: float, noise: float, role: str, measure: str):
    m, d = [], []
    for run in ("ref", "rep"):
        for b in range(8):
            ids = (run, 100, b, role)
            v = 0.5 + slope * b + RNG.standard_normal() * noise
            m += [(*ids, measure, v), (*ids, "tail", 1.5 + (slope * b if measure == "tail" else 0)),
                  (*ids, "alpha", 8.0), (*ids, "w1_gaussian", 0.05 + (slope * b + 0.5 if measure == "w1_gaussian" else 0))]
            d += [(*ids, "gaussian", k, x, y) for k in range(K) for x, y in
                  (("tail", 1.5 + 0.001 * RNG.standard_normal()), ("w1_gaussian", 0.05 + 0.001 * RNG.standard_normal()))]
    cols = ["run", "step", "block", "role"]
    return (pd.DataFrame(m, columns=[*cols, "measure", "value"]).drop_duplicates(cols + ["measure"], keep="first"),
            pd.DataFrame(d, columns=[*cols, "kind", "draw", "measure", "value"]))


@pytest.mark.parametrize("slope,noise,expected", [(-0.05, 0.001, iv.HOLDS), (0.05, 0.001, iv.FAILS), (0.0, 0.05, iv.UNDECIDED)])
def test_claim3_output_slope_three_ways(slope, noise, expected):
    m, d = depth_tables(slope, noise, "mlp_out", "w1_gaussian")
    t = verdicts.depth_trends(m, d, ["ref", "rep"], 0.95)
    assert verdict(t, "output matrix", "mlp_out") == expected
    assert t["resolution"].iloc[0] > 0 and t["blocks"].iloc[0] == 8


@pytest.mark.parametrize("slope,expected", [(0.05, iv.HOLDS), (-0.05, iv.FAILS), (0.0, iv.UNDECIDED)])
def test_claim3_input_tail_ratio_three_ways(slope, expected):
    m, d = depth_tables(slope, 0.0, "qkv", "tail")
    m.loc[m.measure == "alpha", "value"] += RNG.standard_normal((m.measure == "alpha").sum()) * 0.1
    t = verdicts.depth_trends(m, d, ["ref", "rep"], 0.95)
    ratio = t[t.part.str.contains("σmax")]
    assert ratio["verdict"].iloc[0] == expected


@pytest.mark.parametrize("role,measure", [("mlp_out", "w1_gaussian"), ("qkv", "alpha"), ("qkv", "tail")])
def test_claim3_a_trend_that_cannot_be_measured_is_undecided_not_holds(role, measure):
    # A NaN statistic (an α fit that failed, a degenerate block) compares False both ways:
    # it must come out undecided, never "holds" (an earlier rank-correlation version did).
    m, d = depth_tables(-0.05 if measure == "w1_gaussian" else 0.05, 0.001, role, measure)
    m.loc[m.measure == measure, "value"] = np.nan
    t = verdicts.depth_trends(m, d, ["ref", "rep"], 0.95)
    rows = t[t.part.str.startswith("output")] if role == "mlp_out" else \
        t[t.part.str.contains("α" if measure == "alpha" else "σmax")]
    assert len(rows) == 1 and rows["verdict"].iloc[0] == iv.UNDECIDED
    for rule in (iv.positive, iv.negative):
        assert rule(np.nan, np.nan) == iv.UNDECIDED
    assert iv.above(np.nan, (0.0, 1.0)) == iv.below(np.nan, (0.0, 1.0)) == iv.UNDECIDED


@pytest.mark.parametrize("treatment,expected", [(0.4, iv.HOLDS), (2.5, iv.FAILS), (1.25, iv.UNDECIDED)])
def test_alike_is_an_equivalence_test_against_the_replica(treatment, expected):
    rng = np.random.default_rng(3)
    r, t = rng.exponential(1.0, (8, 5)), treatment * rng.exponential(1.0, (8, 5))
    row = verdicts._ratio_test(4, "x", "x", t, r, 1000, 0.95, 0, margin=0.25)
    assert row["verdict"] == expected


def test_replicas_are_matched_to_how_the_treatment_starts():
    def dist(run, d0):
        return [(run, s, 0, "qkv", "weight_distance", d0 + 0.1 * s) for s in range(3)]

    cols = ["run", "step", "block", "role", "measure", "value"]
    shared = pd.DataFrame(dist("t", 0.0) + dist("seed", 1.4) + dist("order", 0.0), columns=cols)
    assert verdicts.matched_replicas(shared, "t", ["seed", "order"]) == ["order"]
    independent = pd.DataFrame(dist("t", 1.4) + dist("seed", 1.4), columns=cols)
    assert verdicts.matched_replicas(independent, "t", ["seed"]) == ["seed"]
    assert verdicts.matched_replicas(shared, "t", ["seed"]) == []  # -> every claim 4 row undecided
    rounding = pd.DataFrame(dist("t", 3e-6) + dist("seed", 1.4), columns=cols)  # float32 rounding at step 0
    assert verdicts.matched_replicas(rounding, "t", ["seed"]) == []
    late = pd.DataFrame([r for r in dist("t", 0.0) + dist("seed", 1.4) if r[1] > 0], columns=cols)  # no step 0
    assert verdicts.matched_replicas(late, "t", ["seed"]) == []


def test_depth_slope_test_keeps_its_level_under_the_null():
    # No trend, a block effect shared by the runs: false verdicts at most the nominal 5%
    # (plus Monte Carlo error), since blocks are the units.
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(400):
        shared = rng.standard_normal(8)
        vals = pd.DataFrame([(run, b, shared[b] + 0.3 * rng.standard_normal()) for run in ("a", "b") for b in range(8)],
                            columns=["run", "block", "value"])
        _, lo, hi, _ = verdicts.depth_slope(vals, 0.95)
        hits += lo > 0 or hi < 0
    assert hits / 400 < 0.05 + 2 * np.sqrt(0.05 * 0.95 / 400)


def test_tail_band_keeps_its_level_when_the_weights_are_one_more_draw():
    from analysis import measures
    from analysis.spectra import singular_values

    rng = np.random.default_rng(6)
    hits, n = 0, 300
    for _ in range(n):
        tails = [measures.tail(singular_values(rng.standard_normal((96, 32)))) for _ in range(6)]
        hits += iv.above(tails[0], iv.prediction_band(tails[1:], 0.95)) != iv.UNDECIDED
    assert hits / n < 0.05 + 2 * np.sqrt(0.05 * 0.95 / n)


@pytest.mark.parametrize("toy,expected", [(0.01, iv.HOLDS), (0.2, iv.FAILS), (0.1, iv.UNDECIDED)])
def test_claim2_toy_must_beat_the_best_non_product_control(toy, expected):
    rows = [("run", 100, 0, "qkv", "toy", s, toy + 0.01 * RNG.standard_normal()) for s in range(8)]
    for model, level in (("gaussian", 0.1), ("logistic", 0.12), ("scaled", 0.1)):
        rows += [("run", 100, 0, "qkv", model, s, level + 0.01 * RNG.standard_normal()) for s in range(5)]
    fit = pd.DataFrame(rows, columns=["run", "step", "block", "role", "model", "sample", "w1"])
    depth = pd.DataFrame([("run", 100, 0, "qkv", 12, 12, 10, 14, 6.0, 0.01)],
                         columns=["run", "step", "block", "role", "depth", "heldout_depth", "low", "high",
                                  "mean_path_length", "distance"])
    t = verdicts.residual_paths(fit, depth, 16, 0.95)
    assert verdict(t, "toy fits better") == expected
    assert verdict(t, "best toy depth") == iv.HOLDS  # 10-14 inside 10-20 of 16


def test_sharpness_uses_steps_not_checkpoint_index():
    # The same trajectory on an even and a log-spaced schedule: a jump between two close
    # checkpoints is steeper per share of training.
    fro = pd.DataFrame({"block": 0, "step": [0, 1, 2, 4, 100], "value": [1.0, 1.0, 2.0, 2.0, 2.0]})
    even = fro.assign(step=[0, 25, 50, 75, 100])
    assert verdicts.sharpness(fro, 0).iloc[0] == pytest.approx(100.0)
    assert verdicts.sharpness(even, 0).iloc[0] == pytest.approx(4.0)


def test_prediction_band_covers_new_draws_at_its_level():
    rng = np.random.default_rng(1)
    hits = [lo <= x <= hi for lo, hi, x in
            ((*iv.prediction_band(rng.standard_normal(5), 0.9), rng.standard_normal()) for _ in range(4000))]
    assert abs(np.mean(hits) - 0.9) < 0.02


@pytest.mark.parametrize("low,high,expected", [(6, 8, iv.HOLDS), (2, 4, iv.FAILS), (4, 12, iv.UNDECIDED)])
def test_claim2_depth_band_three_ways(low, high, expected):
    fit = pd.DataFrame([("run", 100, 0, "qkv", model, s, w) for model, w in (("toy", 0.1), ("gaussian", 0.1))
                        for s, w in enumerate([w, w + 0.01, w + 0.02])],
                       columns=["run", "step", "block", "role", "model", "sample", "w1"])
    depth = pd.DataFrame([("run", 100, 0, "qkv", 7, (low + high) // 2, low, high, 3.5, 0.01)],
                         columns=["run", "step", "block", "role", "depth", "heldout_depth", "low", "high",
                                  "mean_path_length", "distance"])
    t = verdicts.residual_paths(fit, depth, 8, 0.95)  # the study's 10-20 of 16, scaled: 5-10 of 8
    assert verdict(t, "best toy depth") == expected


def _arch_rows(effects: dict, verdict_of: dict, band=(np.nan, np.nan), measure="m") -> pd.DataFrame:
    """Per-run rows of one claim part and role: {architecture: [effect per run]}, runs named
    {architecture}{i}; twins share i."""
    rows = []
    for arch, values in effects.items():
        for i, e in enumerate(values):
            rows.append({**verdicts._row(1, "p", f"{arch}{i}", "qkv", measure, e, e, e, verdict_of[arch], band),
                         "architecture": arch, "scope": "run"})
    return pd.DataFrame(rows)


def _pairs(n):
    return [(f"parallel{i}", f"sequential{i}") for i in range(n)]


@pytest.mark.parametrize("effects,band,expected", [
    # Twins a hair apart, far from the band edge that would flip the verdict (Δ = 2 - 1.1 = 0.9): agree.
    ({"parallel": [2.0, 2.2], "sequential": [2.05, 2.24]}, (0.9, 1.1), verdicts.AGREE),
    # The same twin differences, but the parallel mean sits near the band edge (Δ = 0.05): undecided.
    ({"parallel": [1.1, 1.2], "sequential": [1.15, 1.24]}, (0.9, 1.1), iv.UNDECIDED),
    # Twins far apart, consistently (pairing removes the seed's spread), beyond Δ: differ.
    ({"parallel": [2.0, 5.0, 3.0], "sequential": [6.0, 9.01, 7.0]}, (0.9, 1.1), verdicts.DIFFER),
    # Both wirings fail the claim alike (effect below the band): agreement on the measure, and
    # the label says "agree", not "holds".
    ({"parallel": [0.2, 0.3], "sequential": [0.21, 0.3]}, (0.9, 1.1), verdicts.AGREE),
])
def test_architectures_are_compared_by_twin_differences_against_a_margin(effects, band, expected):
    (row,) = verdicts.architectures(_arch_rows(effects, {"parallel": iv.HOLDS, "sequential": iv.HOLDS}, band), 0.95,
                                    _pairs(len(effects["parallel"]))).to_dict("records")
    assert row["verdict"] == expected
    d_i = np.subtract(effects["sequential"], effects["parallel"])
    n = len(d_i)
    assert row["effect"] == pytest.approx(d_i.mean())
    se = d_i.std(ddof=1) / np.sqrt(n)  # paired: twin differences, n_pairs - 1 dof
    assert row["high"] - row["effect"] == pytest.approx(scipy.stats.t.ppf(0.95, n - 1) * se)  # the 1 - 2α interval
    margin = min(abs(np.mean(effects["parallel"]) - b) for b in band)
    assert row["noise_high"] == pytest.approx(margin)
    # Power from the noncentral t: the resolution is where the one-sided |d| > Δ test has 80% power.
    t = scipy.stats.t.ppf(0.95, n - 1)
    assert scipy.stats.nct.sf(t, n - 1, (row["resolution"] - margin) / se) == pytest.approx(0.8, abs=1e-6)


def test_twins_with_opposite_seeds_spread_are_paired_not_pooled():
    """A constant shift between twins, whatever the seeds do: the pooled (unpaired) spread
    would hide it; the paired one does not."""
    rows = _arch_rows({"parallel": [1.0, 5.0, 9.0], "sequential": [1.5, 5.5, 9.51]}, {"parallel": iv.HOLDS, "sequential": iv.HOLDS})
    (row,) = verdicts.architectures(rows, 0.95, _pairs(3)).to_dict("records")  # Δ = |5 - 0| = 5: d = 0.5 agrees
    assert row["verdict"] == verdicts.AGREE and row["high"] - row["low"] < 0.1


def test_discrete_measure_without_spread_is_not_beyond_by_a_zero_width_interval():
    """Grid-valued measures (checkpoint shares) can have twins differ by the same grid step
    in both pairs: SD 0. Without a grid the spread is not estimable (undecided); with one,
    the SE is floored at the grid's rounding and the step is not 'beyond'."""
    effects = {"parallel": [0.25, 0.25], "sequential": [0.5, 0.5]}
    rows = _arch_rows(effects, {"parallel": iv.HOLDS, "sequential": iv.FAILS}, (0.0, 0.375), measure="share")
    (bare,) = verdicts.architectures(rows, 0.95, _pairs(2)).to_dict("records")
    assert bare["verdict"] == iv.UNDECIDED and "spread not estimable" in bare["detail"]
    grid = [0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1]
    (floored,) = verdicts.architectures(rows, 0.95, _pairs(2), {"share": grid}).to_dict("records")
    assert floored["verdict"] == iv.UNDECIDED and "floored" in floored["detail"]
    h = 0.5  # the widest cell next to an observed value (0.5 to 1)
    assert floored["se"] == pytest.approx(h * np.sqrt(2 / 12) / np.sqrt(2))
    assert verdicts.grid_step([0.25, 0.5], grid) == h


def test_holm_adjusts_the_differ_family():
    assert verdicts.holm([0.01, 0.04, 0.03, np.nan]) == pytest.approx([0.03, 0.06, 0.06, np.nan], nan_ok=True)
    # Two rows, each "differ" at 5% on its own (p about 0.03): after Holm neither survives.
    rows = pd.concat([_arch_rows({"parallel": [0.0, 0.0, 0.0], "sequential": s}, {"parallel": iv.HOLDS, "sequential": iv.HOLDS},
                                 (-0.0, 0.0)).assign(role=role)
                      for role, s in (("qkv", [1.0, 1.5, 0.5]), ("mlp_in", [1.0, 1.45, 0.55]))], ignore_index=True)
    out = verdicts.architectures(rows, 0.95, _pairs(3)).set_index("role")
    assert (out["p"] < 0.05).all() and (out["p_holm"] > 0.05).all() and (out["verdict"] == iv.UNDECIDED).all()
    # Alone, the clearer one does.
    alone = verdicts.architectures(rows[rows.role == "mlp_in"], 0.95, _pairs(3))
    assert alone["verdict"].iloc[0] == verdicts.DIFFER and alone["p_holm"].iloc[0] == alone["p"].iloc[0]


def test_architecture_comparison_keeps_its_level_under_correlated_twins():
    """No architecture effect, twins correlated (shared seed: same start and data), the
    parallel mean exactly at the margin's reference: 'differ' (|d| > Δ) and a false 'agree'
    when the true |d| sits at Δ each come out in at most about 5% of units."""
    rng = np.random.default_rng(11)
    n, rho, differ, agree = 400, 0.8, 0, 0
    for _ in range(n):
        seed_part = rng.standard_normal(2)  # what the twins share
        par = 3.0 + seed_part + np.sqrt(1 - rho) * rng.standard_normal(2)
        seq = 3.0 + seed_part + np.sqrt(1 - rho) * rng.standard_normal(2)
        rows = _arch_rows({"parallel": list(par), "sequential": list(seq)}, {"parallel": iv.HOLDS, "sequential": iv.HOLDS},
                          (0.0, 0.0))  # Δ = |mean parallel| ≈ 3
        differ += verdicts.architectures(rows, 0.95, _pairs(2))["verdict"].iloc[0] == verdicts.DIFFER
        # At the margin: a true difference of exactly Δ should be called "agree" at most 5% of the time.
        shifted = _arch_rows({"parallel": list(par), "sequential": list(seq + par.mean())},
                             {"parallel": iv.HOLDS, "sequential": iv.HOLDS}, (0.0, 0.0))
        agree += verdicts.architectures(shifted, 0.95, _pairs(2))["verdict"].iloc[0] == verdicts.AGREE
    bound = 0.05 + 2 * np.sqrt(0.05 * 0.95 / n)
    assert differ / n < bound and agree / n < bound

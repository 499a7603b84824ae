import numpy as np
import pandas as pd
import pytest

from analysis import dynamics
from analysis.intervals import prediction_band


def table_from(traj: dict, measure: str = "frobenius") -> pd.DataFrame:
    """traj: {(run, role, block): values over steps 0..n-1}"""
    rows = []
    for (run, role, block), values in traj.items():
        rows += [{"run": run, "step": s, "block": block, "role": role, "measure": measure, "value": v}
                 for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_ordering_agreement_compares_every_other_run_with_the_reference():
    t = np.linspace(0, 1, 5)
    traj = {}
    for block in range(4):
        traj[("raw", "qkv", block)] = 1 + block + t
        traj[("deduped", "qkv", block)] = 1 + block + t**2  # same order as the reference
        traj[("raw-seed2", "qkv", block)] = 4 - block + t  # reversed order
    out = dynamics.ordering_agreement(table_from(traj), "frobenius", "raw")
    assert set(out["run"]) == {"deduped", "raw-seed2"} and len(out) == 2 * 5
    assert np.allclose(out[out.run == "deduped"]["kendall_tau"], 1.0)
    assert np.allclose(out[out.run == "raw-seed2"]["kendall_tau"], -1.0)


def test_ordering_agreement_skips_steps_with_too_few_blocks_and_keeps_role_order():
    traj = {(run, role, b): [1.0 + b, 2.0 + b] for run in ("a", "b") for role in ("qkv", "attn_out") for b in range(3)}
    traj.update({(run, "mlp_in", b): [1.0, 2.0] for run in ("a", "b") for b in range(2)})  # two blocks: no τ
    out = dynamics.ordering_agreement(table_from(traj), "frobenius", "a")
    assert list(dict.fromkeys(out["role"])) == ["qkv", "attn_out"]


def test_over_blocks_gives_mean_and_block_range_per_run_role_step():
    traj = {("b", "qkv", block): [block * 1.0, block * 2.0] for block in range(3)}
    out = dynamics.over_blocks(table_from(traj, "w1_spectrum"), "w1_spectrum").set_index("step")
    assert out.loc[0, "mean"] == 1.0 and out.loc[0, "low"] == 0.0 and out.loc[0, "high"] == 2.0
    assert out.loc[1, "mean"] == 2.0 and out.loc[1, "high"] == 4.0 and (out["blocks"] == 3).all()


def test_mean_over_matrices_averages_roles_and_blocks_per_step():
    traj = {("b", "qkv", 0): [0.0, 1.0], ("b", "mlp_in", 0): [0.0, 3.0]}
    out = dynamics.mean_over_matrices(table_from(traj, "weight_distance"), "weight_distance")
    assert out["value"].tolist() == [0.0, 2.0] and out["step"].tolist() == [0, 1]


def test_activation_kurtosis_is_tidy_per_block():
    records = [{"run": "a", "step": 4, "hist": np.zeros((2, 3)), "kurtosis": np.array([0.5, -1.0]), "std": np.ones(2)}]
    out = dynamics.activation_kurtosis(records)
    assert out.to_dict("records") == [{"run": "a", "step": 4, "block": 0, "kurtosis": 0.5},
                                      {"run": "a", "step": 4, "block": 1, "kurtosis": -1.0}]


def _init_tables(w: dict, centre: dict, spread: float = 0.01):
    """measures/draws of init runs: w {(kind, step, role): W1 to Gaussian}, the draws around centre."""
    m, d = [], []
    rng = np.random.default_rng(0)
    for (kind, step, role), value in w.items():
        m.append({"kind": kind, "seed": 1, "step": step, "role": role, "measure": "w1_gaussian", "value": value})
        for x in centre[(kind, step, role)] + spread * rng.standard_normal(8):
            d.append({"kind": kind, "seed": 1, "step": step, "role": role, "draw_kind": "gaussian",
                      "measure": "w1_gaussian", "value": x})
    return pd.DataFrame(m), pd.DataFrame(d)


def test_learned_excess_share_is_the_excess_over_the_transplants_step0_excess():
    w = {("transplant", 0, "a"): 1.1, ("transplant", 8, "a"): 0.6, ("standard", 0, "a"): 0.1,
         ("standard", 8, "a"): 0.35}
    centre = {k: 0.1 for k in w}
    m, d = _init_tables(w, centre)
    out = dynamics.learned_excess_share(m, d, 0.95).set_index(["kind", "step"])
    c = d.groupby(["kind", "step"])["value"].mean()
    learned = 1.1 - c[("transplant", 0)]
    assert out.loc[("transplant", 0), "share"] == pytest.approx(1.0)
    assert out.loc[("transplant", 8), "share"] == pytest.approx((0.6 - c[("transplant", 8)]) / learned)
    assert out.loc[("standard", 8), "share"] == pytest.approx((0.35 - c[("standard", 8)]) / learned)
    assert 0.2 < out.loc[("standard", 8), "share"] < 0.3 and 0.45 < out.loc[("transplant", 8), "share"] < 0.55


def test_learned_excess_share_is_missing_where_the_learned_excess_is_noise():
    w = {("transplant", 0, "a"): 0.105, ("transplant", 8, "a"): 0.3, ("transplant", 0, "b"): 1.0,
         ("transplant", 8, "b"): 1.0}
    m, d = _init_tables(w, {k: 0.1 for k in w})
    out = dynamics.learned_excess_share(m, d, 0.95).set_index(["role", "step"])
    assert np.isnan(out.loc[("a", 8), "share"]) and np.isnan(out.loc[("a", 0), "share"])
    assert np.isfinite(out.loc[("b", 8), "share"])


def test_share_frame_gives_mean_and_seed_range_per_kind_and_role_and_a_dash_for_noise():
    from analysis.plots import init_spectrum

    share = pd.DataFrame({"kind": ["standard"] * 4 + ["transplant"] * 4, "seed": [1, 2] * 4, "step": 8,
                          "role": (["qkv"] * 2 + ["mlp_out"] * 2) * 2,
                          "share": [0.1, 0.3, np.nan, np.nan, 1.0, 0.96, np.nan, np.nan],
                          "noise": [0.01, 0.03, np.nan, np.nan, 0.01, 0.01, np.nan, np.nan]})
    out = init_spectrum.share_frame(share, 8).set_index("init")
    assert out.loc["standard", "attention QKV"] == "20% [10, 30] ±2.0"
    assert out.loc["standard", "MLP out"] == out.loc["transplant", "MLP out"] == "—"  # no unit for the role
    assert out.loc["transplant", "attention QKV"] == "98% [96, 100] ±1.0"
    assert init_spectrum.share_frame(share, 4).empty


def test_learned_excess_share_has_one_unit_per_role_averaged_over_seeds_and_noise_in_it():
    rng = np.random.default_rng(1)
    w = {("transplant", 1, 0, "a"): 1.1, ("transplant", 2, 0, "a"): 1.3, ("transplant", 1, 0, "b"): 0.5,
         ("transplant", 2, 0, "b"): 0.5, ("standard", 1, 8, "a"): 0.7, ("standard", 2, 8, "b"): 0.7}
    m = pd.DataFrame([{"kind": k, "seed": s, "step": t, "role": r, "measure": "w1_gaussian", "value": v}
                      for (k, s, t, r), v in w.items()])
    d = pd.DataFrame([{"kind": k, "seed": s, "step": t, "role": r, "draw_kind": "gaussian", "measure": "w1_gaussian",
                       "value": x} for (k, s, t, r) in w for x in 0.1 + 0.01 * rng.standard_normal(8)])
    out = dynamics.learned_excess_share(m, d, 0.95).set_index(["kind", "seed", "step", "role"])
    c = d.groupby(["kind", "seed", "step", "role"])["value"].mean()
    unit_a = ((1.1 - c[("transplant", 1, 0, "a")]) + (1.3 - c[("transplant", 2, 0, "a")])) / 2  # ~1.1
    unit_b = ((0.5 - c[("transplant", 1, 0, "b")]) + (0.5 - c[("transplant", 2, 0, "b")])) / 2  # ~0.4
    assert out.loc[("standard", 1, 8, "a"), "share"] == pytest.approx((0.7 - c[("standard", 1, 8, "a")]) / unit_a)
    assert out.loc[("standard", 2, 8, "b"), "share"] == pytest.approx((0.7 - c[("standard", 2, 8, "b")]) / unit_b)
    assert out.loc[("standard", 2, 8, "b"), "share"] > 1.3  # further from Gaussian than the trained matrix
    assert out.loc[("transplant", 1, 0, "a"), "share"] < 1 < out.loc[("transplant", 2, 0, "a"), "share"]
    lo, hi = prediction_band(d[(d.kind == "standard") & (d.role == "a")]["value"], 0.95)
    assert out.loc[("standard", 1, 8, "a"), "noise"] == pytest.approx((hi - lo) / 2 / unit_a)


def test_learned_excess_share_is_missing_for_the_role_when_one_seeds_learned_excess_is_noise():
    rng = np.random.default_rng(2)
    w = {("transplant", 1, 0, "a"): 1.0, ("transplant", 2, 0, "a"): 0.11, ("standard", 1, 8, "a"): 0.5}
    m = pd.DataFrame([{"kind": k, "seed": s, "step": t, "role": r, "measure": "w1_gaussian", "value": v}
                      for (k, s, t, r), v in w.items()])
    d = pd.DataFrame([{"kind": k, "seed": s, "step": t, "role": r, "draw_kind": "gaussian", "measure": "w1_gaussian",
                       "value": x} for (k, s, t, r) in w for x in 0.1 + 0.01 * rng.standard_normal(8)])
    out = dynamics.learned_excess_share(m, d, 0.95)
    assert out["share"].isna().all() and out["noise"].isna().all()

"""Question 7's verdicts on constructed loss curves and spectra: each comes out each way."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from analysis import verdicts as vd

STEPS = np.arange(0, 65, 8)


def _curves(kinds: dict, seeds=(1, 2), seed=0) -> pd.DataFrame:
    """kinds: {kind: (time constant, final loss, seed noise sd)} -> (kind, seed, step, loss):
    loss = final + 3 exp(-step / tau) plus a per-seed offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, (tau, final, sd) in kinds.items():
        for s in seeds:
            off = rng.normal(0, sd)
            rows += [{"kind": kind, "seed": s, "step": int(t), "loss": final + 3 * np.exp(-t / tau) + off} for t in STEPS]
    return pd.DataFrame(rows)


GRID = list(STEPS[1:])


def test_faster_slower_and_within_noise_each_come_out():
    curves = _curves({"standard": (20, 5.0, 0.002), "fast": (8, 5.0, 0.002), "slow": (40, 5.1, 0.002),
                      "noisy": (20, 5.0, 0.3)})
    rows = vd.init_faster(curves, GRID, 0.95).set_index("run")
    assert rows.loc["fast", "verdict"] == "holds" and rows.loc["fast", "effect"] > 0
    assert rows.loc["slow", "verdict"] == "does not hold" and rows.loc["slow", "effect"] < 0
    assert rows.loc["noisy", "verdict"] == "undecided"
    assert (rows["claim"] == 7).all() and (rows["part"] == vd.FASTER).all()
    # The resolution is what the seeds allow: wider noise, larger detectable effect.
    assert rows.loc["noisy", "resolution"] > 10 * rows.loc["fast", "resolution"]


def test_holm_over_the_inits_and_the_family_verdict_each_way():
    # One clearly faster init among several: it holds after the correction, and so does the family.
    curves = _curves({"standard": (20, 5.0, 0.002), "fast": (8, 5.0, 0.002), "same": (20, 5.0, 0.002),
                      "same2": (20, 5.0, 0.002)}, seeds=(1, 2, 3))
    rows = vd.init_faster(curves, GRID, 0.95)
    assert (rows["p_holm"] >= rows["p"]).all() and rows.set_index("run").loc["fast", "verdict"] == "holds"
    assert vd.init_family(rows) == "holds"
    slower = _curves({"standard": (20, 5.0, 0.002), "a": (40, 5.2, 0.002), "b": (40, 5.3, 0.002)})
    assert vd.init_family(vd.init_faster(slower, GRID, 0.95)) == "does not hold"
    mixed = _curves({"standard": (20, 5.0, 0.002), "a": (40, 5.2, 0.002), "n": (20, 5.0, 0.3)})
    assert vd.init_family(vd.init_faster(mixed, GRID, 0.95)) == "undecided"


def test_no_measured_spread_is_undecided_not_faster():
    curves = _curves({"standard": (20, 5.0, 0.0), "fast": (8, 5.0, 0.0)})
    curves["loss"] = curves["loss"].round(6)
    (row,) = vd.init_faster(curves, GRID, 0.95).to_dict("records")
    assert row["effect"] > 0 and row["verdict"] == "undecided" and "no spread" in row["detail"]


def test_detectable_effect_has_the_stated_power():
    assert vd.detectable(1.0, 1e6, 0.95) == pytest.approx(1.96 + 0.8416, rel=1e-3)  # the normal limit
    d = vd.detectable(1.0, 2.0, 0.95)
    t = scipy.stats.t.ppf(0.975, 2)
    power = scipy.stats.nct.sf(t, 2, d) + scipy.stats.nct.cdf(-t, 2, d)
    assert power == pytest.approx(0.8, abs=1e-6) and d > t + scipy.stats.t.ppf(0.8, 2)  # the shortcut understates it
    assert np.isnan(vd.detectable(0.0, 2.0, 0.95))


def test_the_same_init_as_the_standard_is_undecided():
    curves = _curves({"standard": (20, 5.0, 0.01), "same": (20, 5.0, 0.01)}, seeds=(1, 2, 3))
    assert vd.init_faster(curves, GRID, 0.95)["verdict"].tolist() == ["undecided"]


def test_a_diverged_init_does_not_hold():
    curves = _curves({"standard": (20, 5.0, 0.01), "blown": (20, 5.0, 0.01)})
    curves.loc[(curves.kind == "blown") & (curves.step > 30), "loss"] = np.nan
    (row,) = vd.init_faster(curves, GRID, 0.95).to_dict("records")
    assert row["verdict"] == "does not hold" and "diverged" in row["detail"]


def test_steps_to_interpolates_and_says_when_never():
    assert vd.steps_to([0, 8, 16], [6.0, 5.0, 4.0], 4.5) == pytest.approx(12.0)
    assert vd.steps_to([0, 8, 16], [6.0, 5.0, 4.0], 7.0) == 0.0
    assert np.isnan(vd.steps_to([0, 8, 16], [6.0, 5.0, 4.0], 3.0))


def test_steps_to_target_table():
    curves = _curves({"standard": (20, 5.0, 0.002), "fast": (8, 5.0, 0.002), "slow": (40, 5.3, 0.002)})
    table, target = vd.init_steps(curves, 0.95)
    std_final = curves[(curves.kind == "standard") & (curves.step == STEPS[-1])]["loss"]
    assert target == pytest.approx(std_final.max())  # every standard seed reaches it
    t = table.set_index("kind")
    assert t.loc["standard", "reached"] == 2 and np.isfinite(t.loc["standard", "steps"])
    assert t.loc["fast", "reached"] == 2 and t.loc["fast", "steps"] < 40
    assert t.loc["fast", "low"] <= t.loc["fast", "steps"] <= t.loc["fast", "high"]
    assert t.loc["slow", "reached"] == 0 and np.isnan(t.loc["slow", "steps"])


def _shape_tables(w1: dict, spread=0.01, draws=10):
    """w1: {(kind, seed, role): the spectrum's W1 to Gaussian at the last step}; Gaussian draws
    around 0.1 with the given spread."""
    rng = np.random.default_rng(0)
    m, d = [], []
    for (kind, seed, role), v in w1.items():
        m.append({"kind": kind, "seed": seed, "step": 64, "block": 1, "role": role, "measure": "w1_gaussian", "value": v})
        d += [{"kind": kind, "seed": seed, "step": 64, "block": 1, "role": role, "draw_kind": "gaussian", "draw": i,
               "measure": "w1_gaussian", "value": 0.1 + spread * z} for i, z in enumerate(rng.standard_normal(draws))]
    return pd.DataFrame(m), pd.DataFrame(d)


def test_shape_reforms_and_is_kept_each_way():
    m, d = _shape_tables({("standard", 1, "qkv"): 0.3, ("standard", 1, "mlp_in"): 0.1,
                          ("transplant", 1, "qkv"): 0.3, ("transplant", 1, "mlp_in"): 0.0})
    rows = vd.init_shape(m, d, 0.95)
    got = {(x.run, x.role): x.verdict for x in rows.itertuples()}
    assert got == {("standard seed 1", "qkv"): "holds", ("standard seed 1", "mlp_in"): "undecided",
                   ("transplant seed 1", "qkv"): "holds", ("transplant seed 1", "mlp_in"): "does not hold"}
    assert set(rows["part"]) == set(vd.SHAPE_PARTS.values())

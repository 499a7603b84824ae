import numpy as np
import pandas as pd

from analysis import dynamics


def table_from(traj: dict) -> pd.DataFrame:
    """traj: {(run, role, block): values over steps 0..n-1}"""
    rows = []
    for (run, role, block), values in traj.items():
        rows += [{"run": run, "step": s, "block": block, "role": role, "measure": "frobenius", "value": v}
                 for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_largest_shift_finds_a_step_and_rates_its_sharpness():
    smooth = np.linspace(1, 2, 30)
    jump = np.r_[np.full(15, 1.0), np.full(15, 2.0)]
    s, j = dynamics.largest_shift(smooth), dynamics.largest_shift(jump)
    assert j["index"] == 15 and j["sharpness"] == 1.0
    assert s["sharpness"] < 0.1
    assert dynamics.largest_shift(np.ones(10))["index"] is None


def test_similarity_and_ordering_of_two_runs():
    t = np.linspace(0, 1, 20)
    traj = {}
    for block in range(4):
        traj[("raw", "qkv", block)] = 1 + block + t
        traj[("deduped", "qkv", block)] = 1 + block + t**2
    table = table_from(traj)
    sim = dynamics.run_similarity(table, "frobenius", "raw", "deduped")
    assert (sim["pearson_r"] > 0.9).all()
    assert (sim["at_step"] > 0).all()
    order = dynamics.ordering_agreement(table, "frobenius", "raw", "deduped")
    assert np.allclose(order["kendall_tau"], 1.0)


def test_shifts_compare_runs_sharpness():
    traj = {}
    for block in range(3):
        traj[("raw", "qkv", block)] = np.linspace(1, 2, 24)
        traj[("deduped", "qkv", block)] = np.r_[np.full(12, 1.0), np.full(12, 2.0)]
    out = dynamics.shifts(table_from(traj), "frobenius").set_index("run")
    assert out.loc["deduped", "sharpness"] > out.loc["raw", "sharpness"]
    assert out.loc["deduped", "checkpoint"] == 12


def test_dedup_verdicts_need_a_real_margin_for_sharper():
    from analysis import claims

    sim = pd.DataFrame([{"role": "qkv", "block": 0, "pearson_r": 0.99, "max_rel_diff": 0.1, "at_step": 3}])
    order = pd.DataFrame([{"role": "qkv", "step": 0, "kendall_tau": 1.0}, {"role": "qkv", "step": 5, "kendall_tau": 0.8}])
    close = pd.DataFrame([{"run": "raw", "role": "qkv", "sharpness": 0.40}, {"run": "deduped", "role": "qkv", "sharpness": 0.41}])
    v = claims.deduplication(sim, order, close, "deduped", "raw").set_index("claim")["verdict"]
    assert v["norm trajectories qualitatively the same"] == "holds" and v["block orderings agree"] == "holds"
    assert v["deduped QKV norms shift more sharply than raw"] == "does not hold"
    sharp = close.assign(sharpness=[0.4, 0.9])
    v = claims.deduplication(sim, order, sharp, "deduped", "raw").set_index("claim")["verdict"]
    assert v["deduped QKV norms shift more sharply than raw"] == "holds"

import numpy as np
import pandas as pd

from analysis import dynamics


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

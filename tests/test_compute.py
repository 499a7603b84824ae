import numpy as np
import pandas as pd

from analysis import claims, compute, config

from .conftest import ROOT, fresh_cache


def test_spectra_cover_runs_steps_roles_and_a_warm_run_recomputes_nothing(corpus_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(fresh_cache(corpus_cache, tmp_path)))
    cfg = config.load(root=ROOT, profile="smoke")
    records = compute.spectra(cfg, progress=False)
    assert len(records) == 2 * 6 * 4  # runs x checkpoints x roles
    r = next(r for r in records if r["role"] == "qkv")
    assert r["block"] == 2 and r["sv"].shape == (32,) and (r["rows"], r["cols"]) == (96, 32)
    cached = sorted(tmp_path.rglob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = compute.spectra(cfg, progress=False)
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.rglob("*.npz"))] == stamps
    assert all(np.array_equal(a["sv"], b["sv"]) for a, b in zip(records, again))
    table = compute.measures(records, tmp_path)
    assert set(table.columns) == {"run", "step", "block", "role", "measure", "value"}
    assert table["value"].notna().all()
    assert {"alpha", "ks_shuffled", "spikes", "stable_rank", "near_zero_mp"} <= set(table["measure"])
    n_files = len(list(tmp_path.rglob("*.npz")))
    assert compute.measures(records, tmp_path).equals(table)  # warm: read back, same values
    assert len(list(tmp_path.rglob("*.npz"))) == n_files


def synthetic_table(ks_by_step: dict, top: float, near: float) -> pd.DataFrame:
    rows = []
    for role in ("qkv", "attn_out", "mlp_in", "mlp_out"):
        for step, ks in ks_by_step.items():
            v = {"ks_gaussian": ks if role != "attn_out" else ks / 4, "top_ratio_gaussian": top,
                 "top_ratio_logistic": top, "near_zero_gaussian": near, "n_singular_values": 200}
            rows += [{"run": "raw", "step": step, "block": 1, "role": role, "measure": k, "value": x} for k, x in v.items()]
    return pd.DataFrame(rows)


def test_verdicts_follow_the_measures():
    early = synthetic_table({0: 0.05, 10: 0.3, 100: 0.4, 1000: 0.42}, top=2.0, near=0.2)
    v = claims.weight_distribution(early)
    assert (v.verdict == "holds").all()
    late = synthetic_table({0: 0.05, 10: 0.06, 100: 0.07, 1000: 0.42}, top=1.02, near=0.1)
    v = claims.weight_distribution(late)
    assert (v.verdict == "does not hold").sum() == len(v) - 1  # only "attn_out most Gaussian" holds
    flat = synthetic_table({0: 0.3, 10: 0.2, 1000: 0.1}, top=2.0, near=0.2)
    assert claims.formation_step(flat, "raw", "qkv") == (None, False)


def test_depth_trend_verdicts_read_the_sign_and_significance():
    rows = []
    for block in range(8):
        for role, value in (("attn_out", 1 - 0.1 * block), ("mlp_out", 0.5), ("qkv", 0.1 * block), ("mlp_in", 1 - 0.1 * block)):
            rows.append({"run": "raw", "step": 10, "block": block, "role": role, "measure": "ks_gaussian", "value": value})
    v = claims.depth_trends(pd.DataFrame(rows)).set_index("role")
    assert v.loc["attn_out", "verdict"] == "holds"  # falls with depth: more Gaussian later
    assert v.loc["mlp_out", "verdict"] == "does not hold"  # flat
    assert v.loc["qkv", "verdict"] == "holds"  # heavier later is allowed for inputs
    assert v.loc["mlp_in", "verdict"] == "does not hold"  # an input getting more Gaussian contradicts it


def test_a_small_memory_budget_changes_the_batches_not_the_records(corpus_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(fresh_cache(corpus_cache, tmp_path / "whole")))
    whole = compute.spectra(config.load(root=ROOT, profile="smoke"), progress=False, blocks="all", steps="last")
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(fresh_cache(corpus_cache, tmp_path / "one")))
    cfg = config.load(root=ROOT, profile="smoke")
    cfg["memory"]["host_gib"] = 1e-9  # below one matrix: every batch holds one
    one = compute.spectra(cfg, progress=False, blocks="all", steps="last")
    assert len(whole) == len(one) == 2 * 4 * 4  # runs x blocks x roles
    for a, b in zip(whole, one):
        assert all(np.array_equal(a[k], b[k]) for k in ("sv", "gaussian", "logistic", "shuffled"))

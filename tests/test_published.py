"""The published Pythia statistics: vendored table, its audit, and the fidelity check."""

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from analysis import published, weight_stats
from analysis.checkpoints import Run

from .conftest import ROOT

MIRROR = Path("/work/.mirror/BerenMillidge+LM_facts_across_training/repo")


def _script():
    spec = importlib.util.spec_from_file_location("vendor", ROOT / "scripts" / "vendor_published_stats.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not MIRROR.exists(), reason="no copy of BerenMillidge/LM_facts_across_training here")
def test_vendor_script_reproduces_the_vendored_files_byte_for_byte(tmp_path):
    vendor = _script()
    table, prov, licence = vendor.build(MIRROR)
    vendor.write(table, prov, licence, tmp_path)
    for name in ("stats.csv.gz", "provenance.json", "LICENSE"):
        assert (tmp_path / name).read_bytes() == (published.FOLDER / name).read_bytes(), name
    commit = subprocess.run(["git", "-C", str(MIRROR), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert prov["commit"] == commit.strip()


def test_vendored_table_has_every_size_role_and_block():
    t = published.load()
    prov = published.provenance()
    assert len(prov["commit"]) == 40 and all(len(h) == 64 for h in prov["sha256"].values())
    assert "MIT" in (published.FOLDER / "LICENSE").read_text()
    for size, (_, layers, _) in published.SIZES.items():
        s = t[(t["size"] == size) & (t.statistic == "std")]
        assert set(s.role) == {"qkv", "attn_out", "mlp_in", "mlp_out"}
        assert set(s.block) == set(range(layers)) and set(s.step) == set(published.STEPS)


def test_audit_maps_sizes_by_width_and_rejects_norm_files_that_hold_diffs():
    t = published.load()
    a = published.audit(t)
    width = a[a.check == "width"]
    assert len(width) == 10 and width.passes.all()  # every size's width from small_init matches its Pythia name
    norm = a[a.check == "norm from std and mean"]
    assert norm[norm["size"] == "19m"].passes.all() and not norm[norm["size"] != "19m"].passes.any()
    usable = published.usable(t, a)
    assert set(usable[usable.statistic == "norm"]["size"]) == {"19m"}
    assert {"std", "mean", "max"} <= set(usable.statistic) and "diff" not in set(usable.statistic)


def test_audit_catches_a_std_that_is_not_positive_and_a_copied_file():
    t = published.load()
    t = t[t["size"] == "19m"].copy()
    std = (t.statistic == "std") & (t.role == "qkv")
    t.loc[std & (t.step == 5000) & (t.block == 2), "value"] = -1.0
    mean, mx = (t.statistic == "mean") & (t.role == "mlp_in"), (t.statistic == "max") & (t.role == "mlp_in")
    t.loc[mx, "value"] = t.loc[mean, "value"].to_numpy()
    a = published.audit(t)
    bad = a[~a.passes]
    assert ((bad.role == "qkv") & (bad.check == "positive")).any()
    assert ((bad.role == "mlp_in") & (bad.check == "distinct") & (bad.statistic == "max")).any()


def test_gaussian_max_matches_simulation():
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((400, 5000)).max(axis=1)
    assert abs(np.median(sims) - weight_stats.gaussian_max(5000)) < 0.05


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A run of four saved checkpoints of a small random GPT-NeoX model, float16 as Pythia's."""
    root = tmp_path_factory.mktemp("pub-run") / "pythia-tiny"
    cfg = GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=128, rotary_pct=0.25, use_parallel_residual=True)
    for step in (1000, 2000, 3000, 4000):
        torch.manual_seed(step)
        GPTNeoXForCausalLM(cfg).half().save_pretrained(root / f"step{step}", safe_serialization=True)
    return Run("pythia-tiny", root)


def test_fidelity_agrees_with_itself_and_catches_a_swapped_step(folder_run):
    roles = ["qkv", "attn_out", "mlp_in", "mlp_out"]
    ours = weight_stats.of_runs({folder_run.name: folder_run}, {folder_run.name: folder_run.steps}, roles)
    # "Published" table derived from the suite, rounded as float16 arithmetic would leave it.
    pub = ours.drop(columns=["run", "n"]).copy()
    pub["value"] = pub["value"].astype(np.float32).astype(np.float64)
    assert weight_stats.compare(ours, pub)["agrees"].all()
    swapped = pub.copy()
    a, b = swapped.step == 2000, swapped.step == 3000
    swapped.loc[a, "step"], swapped.loc[b, "step"] = 3000, 2000
    cmp = weight_stats.compare(ours, swapped)
    assert weight_stats.mismatched_steps(cmp) == [2000, 3000]
    assert cmp[cmp.step.isin([1000, 4000])]["agrees"].all()


def test_fidelity_tolerance_matches_float32_arithmetic_and_catches_a_near_neighbour_step(folder_run):
    """The publisher's float32 statistics of float16 weights agree with ours far inside the
    tolerance; a swapped step whose statistics differ by 3e-4 relative — inside the old
    float16-rounding tolerance 2^-10 — is caught."""
    roles = ["qkv", "attn_out", "mlp_in", "mlp_out"]
    ck = folder_run.checkpoint(1000)
    for role in roles:
        w = ck.matrix(role, 0)
        ours = weight_stats.matrix_stats(w)
        f = torch.from_numpy(np.array(w, dtype=np.float16)).float()
        theirs = {"std": f.std().item(), "mean": f.mean().item(), "max": f.max().item(), "norm": f.norm().item()}
        rms = np.hypot(ours["std"], ours["mean"])
        for k, tol in weight_stats.TOLERANCE.items():
            assert abs(ours[k] - theirs[k]) / (rms if k == "mean" else abs(ours[k])) < tol / 10, (role, k)
    ours = weight_stats.of_runs({folder_run.name: folder_run}, {folder_run.name: folder_run.steps}, roles)
    # Step 3000 made a near copy of step 2000: every statistic 3e-4 relative away (mean: of the rms).
    near = ours.copy()
    two, three = near.step == 2000, near.step == 3000
    rms = np.hypot(*(near[two & (near.statistic == s)].set_index(["block", "role"])["value"] for s in ("std", "mean")))
    base = near[two].set_index(["block", "role", "statistic"])["value"]
    shift = np.where(base.index.get_level_values("statistic") == "mean",
                     3e-4 * rms.reindex(base.index.droplevel("statistic")).to_numpy(), 3e-4 * base.abs().to_numpy())
    near.loc[three, "value"] = (base + shift).reindex(pd.MultiIndex.from_frame(near.loc[three, ["block", "role", "statistic"]])).to_numpy()
    pub = near.drop(columns=["run", "n"]).copy()
    a, b = pub.step == 2000, pub.step == 3000
    pub.loc[a, "step"], pub.loc[b, "step"] = 3000, 2000
    assert weight_stats.compare(near, pub, 2.0**-10)["agrees"].all()  # the old tolerance lets it through
    assert weight_stats.mismatched_steps(weight_stats.compare(near, pub)) == [2000, 3000]


def test_matrix_stats_norm_follows_from_std_and_mean():
    w = np.random.default_rng(1).normal(0.3, 2.0, (40, 30))
    s = weight_stats.matrix_stats(w)
    n = w.size
    assert np.isclose(s["norm"] ** 2, (n - 1) * s["std"] ** 2 + n * s["mean"] ** 2)


def _tails(slope: float, blocks: int = 12, models=("a", "b", "c"), role="qkv", seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for m in models:
        for step in (1, 2):
            for b in range(blocks):
                rows.append({"model": m, "role": role, "step": step, "block": b,
                             "value": 2 + slope * b / (blocks - 1) + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("slope, role, expected", [
    (1.0, "qkv", "holds"), (-1.0, "qkv", "does not hold"), (0.0, "qkv", "undecided"),
    (-1.0, "mlp_out", "holds"), (1.0, "mlp_out", "does not hold"),
])
def test_published_depth_trend_verdict_comes_out_every_way(slope, role, expected):
    from analysis import verdicts

    rows = verdicts.published_depth_trends(_tails(slope, role=role), 0.95, 300, 0, pooled_name="pooled", power_sims=20)
    assert len(rows) == 2 * 4  # (3 models + pooled) x (last step, averaged)
    pooled = rows[rows.run == "pooled"]
    assert set(pooled.verdict) == {expected}
    assert (pooled.low <= pooled.effect).all() and (pooled.effect <= pooled.high).all()
    assert np.allclose(rows[rows.run != "pooled"].effect, slope, atol=0.2)


def test_order_test_false_positive_rate_under_autocorrelated_blocks_is_near_the_level():
    """Neighbouring blocks are alike (lag-1 autocorrelation 0.15–0.6 in the published tail
    ratios): trend-free AR(1) series must be decided at about the level or less, though the
    permutation null alone rejects far more of them."""
    from analysis import verdicts

    rng = np.random.default_rng(3)
    for n in (12, 24):
        x = np.arange(n) / (n - 1)
        tests = [verdicts.order_test(x, z, 0.95, 200, k) for k, z in enumerate(verdicts._ar1(0.5, n, 300, rng))]
        decided = np.mean([t["p"] <= 0.05 for t in tests])
        assert decided <= 0.08, (n, decided)
        assert np.mean([t["p_perm"] <= 0.05 for t in tests]) > 2 * max(decided, 0.02)


def test_order_test_is_exact_under_exchangeable_blocks_and_powerful_against_a_clear_trend():
    from analysis import verdicts

    rng = np.random.default_rng(4)
    x = np.arange(6) / 5
    p = [verdicts.order_test(x, rng.normal(size=6), 0.95, 200, k)["p_perm"] for k in range(400)]
    assert abs(np.mean(np.asarray(p) <= 0.05) - 0.05) < 0.035  # every order of 6 blocks: exact
    assert verdicts.order_power(np.arange(24) / 23, rng.normal(0, 0.1, 24), 1.0, 0.95, 40, 100, 0) > 0.8
    assert verdicts.order_power(np.arange(24) / 23, rng.normal(0, 0.1, 24), 0.01, 0.95, 40, 100, 0) < 0.2


def test_published_contrast_and_across_models_verdicts():
    """The study's contrast (output minus input, paired by block) falls where outputs fall and
    inputs stay flat; across models "holds" needs every size, and one size contradicting at
    the Bonferroni level makes it "does not hold"."""
    from analysis import verdicts

    t = pd.concat([_tails(-1.0, role="mlp_out", seed=1), _tails(0.0, role="mlp_in", seed=2)], ignore_index=True)
    rows = verdicts.published_depth_trends(t, 0.95, 300, 0, pooled_name="pooled", power_sims=0)
    contrast = rows[rows.role == "out − in"]
    assert len(contrast) == 2 * 4 and set(contrast.verdict) == {"holds"}
    mixed = pd.concat([_tails(-1.0, role="mlp_out", models=("a", "b")),
                       _tails(1.0, role="mlp_out", models=("c",), seed=5)], ignore_index=True)
    pooled = verdicts.published_depth_trends(mixed, 0.95, 300, 0, pooled_name="pooled", power_sims=0)
    pooled = pooled[pooled.run == "pooled"]
    assert set(pooled.verdict) == {"does not hold"} and (pooled.effect == 2).all() and (pooled.contradict == 1).all()
    flat = pd.concat([_tails(-1.0, role="mlp_out", models=("a", "b")),
                      _tails(0.0, role="mlp_out", models=("c",), seed=5)], ignore_index=True)
    pooled = verdicts.published_depth_trends(flat, 0.95, 300, 0, pooled_name="pooled", power_sims=0)
    assert set(pooled[pooled.run == "pooled"].verdict) == {"undecided"}


def test_phase_shift_is_located_and_judged_against_a_smooth_null():
    from analysis import dynamics

    steps = np.arange(1000, 142001, 1000)
    rng = np.random.default_rng(0)
    y = np.interp(steps, [1000, 20000, 35000, 142000], [50, 60, 110, 100]) + rng.normal(0, 0.05, len(steps))
    ps = dynamics.phase_shift(steps, y, 100, 0)
    assert abs(ps["step"] - 20000) <= 2000 and ps["acceleration"] > 4 and ps["shift"]  # 50/15000 vs 10/19000
    # Smooth growth that only slows, and smooth growth that speeds up gently: no shift.
    for curve in (50 + 10 * np.log(steps / 1000), 50 + 3e-4 * steps + 1e-9 * steps**2):
        ps = dynamics.phase_shift(steps, curve + rng.normal(0, 0.05, len(steps)), 100, 1)
        assert not ps["shift"], ps


def test_phase_shift_false_positive_rate_on_curves_without_a_shift_is_near_the_level():
    """On smooth saturating curves with noise (no shift) the threshold alone fires often where
    the curve flattens (slopes near the noise); judged against each curve's smooth null, the
    detector's false-positive rate stays near 1 − level."""
    from analysis import dynamics

    steps = np.arange(1000, 142001, 1000, dtype=float)
    rng = np.random.default_rng(2)
    raw, judged = [], []
    for i in range(100):
        y = 50 + rng.uniform(5, 30) * (1 - np.exp(-steps / rng.uniform(2e4, 8e4))) + rng.normal(0, 0.05, len(steps))
        ps = dynamics.phase_shift(steps, y, 60, i, level=0.95)
        raw.append(ps["acceleration"] >= dynamics.SHIFT_ACCELERATION)
        judged.append(ps["shift"])
    assert np.mean(judged) <= 0.08 and np.mean(judged) < np.mean(raw)


def test_size_of_maps_hub_names_standard_and_deduplicated():
    assert published.size_of("EleutherAI/pythia-1.4b-deduped") == "1.3b"
    assert published.size_of("pythia-410m") == "350m"
    assert published.size_of("raw") is None and published.size_of("pythia-2.8b") is None


def test_fidelity_recipe_compares_runs_of_a_published_size_only(folder_run, monkeypatch, tmp_path):
    """compute's fidelity table through the results layer's inputs: a run named as a
    published size is compared (a swapped step caught), a run of another name is not."""
    from types import SimpleNamespace

    from analysis import compute
    from analysis.checkpoints import Run

    roles = ["qkv", "attn_out", "mlp_in", "mlp_out"]
    runs = {"pythia-70m-deduped": Run("pythia-70m-deduped", folder_run.folder), "raw": Run("raw", folder_run.folder)}
    ours = weight_stats.of_runs(runs, {n: run.steps for n, run in runs.items()}, roles)
    pub = ours[ours.run == "raw"].drop(columns=["run", "n"]).assign(size="19m")
    a, b = pub.step == 1000, pub.step == 4000
    pub.loc[a, "step"], pub.loc[b, "step"] = 4000, 1000
    monkeypatch.setattr(compute, "_published_usable", lambda r: pub)
    r = SimpleNamespace(runs=runs, weight_stats=ours)
    fid = compute._published_fidelity(r)
    assert set(fid.run) == {"pythia-70m-deduped"} and set(fid["size"]) == {"19m"}
    assert weight_stats.mismatched_steps(fid) == [1000, 4000]
    assert len(fid) == 4 * 3 * 4 * 4  # steps x blocks x roles x statistics


def test_acceleration_at_a_shared_step():
    from analysis import dynamics

    steps = np.arange(1000, 142001, 1000)
    y = np.interp(steps, [1000, 20000, 35000, 142000], [50, 60, 110, 100])
    assert dynamics.acceleration_at(steps, y, 20000) > 4
    assert np.isclose(dynamics.acceleration_at(steps, y, 10000), 1.0)
    assert np.isnan(dynamics.acceleration_at(steps, y, 2000))  # the window before runs off the curve

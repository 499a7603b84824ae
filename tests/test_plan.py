"""The plan: what compute would solve and read, told from checkpoint metadata alone."""

import json
import os

import numpy as np
import pytest

from analysis import config, plan, results
from analysis.architectures import tensor_names
from analysis.checkpoints import checkpoint, formats
from analysis.cli import main

from .conftest import HUB_STEPS, ROOT, fresh_cache, hub_suite_settings, project_copy, serve_hub_suite, smoke_config


@pytest.fixture(scope="module")
def smoke(corpus_cache, tmp_path_factory):
    """Smoke settings on a fresh cache with the smoke suite trained (nothing computed yet)."""
    from analysis.checkpoints.tiny.train import build

    cache = fresh_cache(corpus_cache, tmp_path_factory.mktemp("plan-cache"))
    cfg = smoke_config(cache)
    build(cfg["tiny"], cache)
    return {**cfg, "depth_steps": 2}  # some steps read every block, others the configured one


def no_tensor_reads(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the plan read tensor data")

    monkeypatch.setattr(formats, "read_tensors", refuse)
    monkeypatch.setattr(checkpoint.Checkpoint, "tensors", refuse)


def test_plan_counts_what_compute_solves_and_reads_no_tensor_data(smoke, monkeypatch):
    with monkeypatch.context() as m:
        no_tensor_reads(m)
        table, totals = plan.plan(smoke)
    assert totals["cached matrices"] == 0 and totals["cached bytes"] == 0
    assert totals["CPU s (est.)"] > 0 and totals["GPU s (est.)"] > 0

    r = results.Results(smoke)
    views = [r] + [r.architecture(label) for label in smoke["architectures"]]
    solved = {}  # what compute actually solves for these settings: the runs and each architecture's, once each
    for v in views:
        solved.update({(x["run"], x["step"], x["block"], x["role"]): x for x in v.spectra})
    assert set(table["run"]) == {n for v in views for n in v.runs} and {"seq", "seq-seed2"} <= set(table["run"])
    assert totals["matrices"] == len(solved) == table["matrices"].sum()
    per_run = {name: sum(k[0] == name for k in solved) for name in table["run"]}
    assert dict(zip(table["run"], table["matrices"])) == per_run
    assert dict(zip(table["run"], table["analysis"]))["seq"] == "architecture sequential"
    assert set(table["source"]) == {"tiny"}

    # bytes: the byte size of every tensor those matrices are made of, as read
    size = 0
    for run, step, block, role in solved:
        ck = next(v.runs[run] for v in views if run in v.runs).checkpoint(step)
        names = tensor_names(ck.architecture, role, block, ck.n_layers)
        size += sum(t.nbytes for t in ck.tensors(names).values())
    assert totals["bytes"] == size

    # after compute every matrix is in the results cache: nothing left to solve
    with monkeypatch.context() as m:
        no_tensor_reads(m)
        table, after = plan.plan(smoke)
    assert after["cached matrices"] == after["matrices"] == len(solved)
    assert after["cached bytes"] == after["bytes"] == size
    assert after["CPU s (est.)"] == 0 and after["GPU s (est.)"] == 0


def test_plan_follows_roles_block_and_steps(smoke):
    r = results.Results(smoke)
    first, middle, last = r.runs[r.reference].steps[:3]
    cfg = {**smoke, "architectures": {}, "roles": ["qkv"], "steps": [first, middle, last], "depth_steps": [first],
           "block": 1}
    table, totals = plan.plan(cfg)
    # the first and last steps read every block (the last always does), the middle one block 1; one role
    assert list(table["matrices"]) == [2 * r.n_layers + 1] * len(table) == [9] * 3
    with pytest.raises(config.ConfigError, match="has no step"):
        plan.plan({**smoke, "steps": [0, 999]})


def test_cpu_cost_has_a_fixed_term_from_small_shapes_and_a_size_term_from_large_ones(tmp_path):
    a, per_solve = 0.004, 1e-10  # seconds: per matrix, fixed; per solve, per max·min²
    small = tmp_path / "cost.log"
    shapes = [(96, 32), (32, 32), (192, 64), (512, 128)]
    small.write_text("CPU, with_draws, draws 10 (31 solves a matrix)\nrole shape s/matrix\n" + "".join(
        f"qkv {m}x{n} {a * (m == 32 or n == 32) + 31 * per_solve * max(m, n) * min(m, n) ** 2:.8f}\n"
        for m, n in shapes))
    large = tmp_path / "spectra.log"
    large.write_text("role shape kind ours\nqkv        6144x2048  random    %.6f   2.364\n"
                     "attn_out   2048x2048  random    %.6f   1.230\n" % (per_solve * 6144 * 2048**2, per_solve * 2048**3))
    model = plan.cpu_cost_model(small, large)
    # a: the narrowest shapes (32 wide: their size term is small); b: the large shapes' solves x 31
    assert model["a"] == pytest.approx(a + 31 * per_solve * np.mean([96 * 32**2, 32**3]))
    assert model["b"] == pytest.approx(31 * per_solve) and model["draws"] == 10 and model["shapes"] == 4
    assert model["worst"] > 1  # the wider shapes here carry no fixed term: the misfit says how far off the model is
    assert plan.cpu_seconds((8, 8), 10, model) == pytest.approx(model["a"], rel=1e-3)
    # a measured shape costs what it measured (at the log's draws); at other draws, the model
    measured = 31 * per_solve * 512 * 128**2
    assert plan.cpu_seconds((512, 128), 10, model) == pytest.approx(measured, rel=1e-4)
    assert plan.cpu_seconds((512, 128), 11, model) == pytest.approx(model["a"] + measured * 34 / 31)
    big = plan.cpu_seconds((4096, 4096), 10, model) - model["a"]
    assert big == pytest.approx(31 * per_solve * 4096**3)
    assert plan.cpu_seconds((4096, 4096), 20, model) - model["a"] == pytest.approx(big * 61 / 31)
    (tmp_path / "empty.log").write_text("nothing measured\n")
    with pytest.raises(plan.CheckpointError, match="matrix_cost.py's log"):
        plan.cpu_cost_model(tmp_path / "empty.log", large)
    with pytest.raises(plan.CheckpointError, match="spectra.py's CPU log"):
        plan.cpu_cost_model(small, tmp_path / "empty.log")


def test_gpu_estimate_is_the_solves_at_the_measured_per_matrix_timing():
    model = plan.gpu_cost_model()
    assert model["device"] == "NVIDIA H200" and model["with_baselines"] > 1
    attn = model["per_solve"][(2048, 2048)]
    assert plan.gpu_seconds((2048, 2048), 10, model) == pytest.approx(31 * attn)
    assert plan.gpu_seconds((1024, 1024), 10, model) == pytest.approx(31 * attn / 8)  # scaled by max·min²


def test_cli_prints_the_plan_and_one_line_errors(smoke, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", smoke["cache_dir"])
    assert main(["plan", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "| total" in out and "ESTIMATE" in out and "matrix-cost-cpu-2core.log" in out and "NVIDIA H200" in out
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))  # no suite trained there: no training either
    assert main(["plan", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-tiny" in err and not (tmp_path / "tiny-suite").exists()


@pytest.fixture(scope="module")
def hub_suite(tmp_path_factory):
    """The HUB_SIZES suite (two sizes of random-weight GPT-NeoX models) on a fake hub that the
    real huggingface_hub client talks to. -> (hub, settings on a fresh cache)"""
    from analysis.testing.fake_hub import FakeHub, client_on

    with FakeHub() as hub, client_on(hub.url):
        serve_hub_suite(hub, tmp_path_factory.mktemp("hub-src"))
        root = project_copy(tmp_path_factory.mktemp("hub-root"), "suite", hub_suite_settings())
        os.environ["ANALYSIS_CACHE_DIR"] = str(tmp_path_factory.mktemp("hub-cache"))
        try:
            cfg = config.load(root=root, profile="suite")
        finally:
            os.environ.pop("ANALYSIS_CACHE_DIR")
        yield hub, cfg


def test_plan_of_a_hub_suite_of_two_sizes_reads_metadata_only(hub_suite, monkeypatch):
    from safetensors import safe_open

    hub, cfg = hub_suite
    with monkeypatch.context() as m:
        no_tensor_reads(m)
        hub.reset()
        table, totals = plan.plan(cfg)
    assert not [r for r in hub.requests("cdn") if r["range"] and int(r["range"].split("-")[-1] or 0) > 1 << 20]
    runs = {n: size["name"] for size in cfg["sizes"] for n in config.run_roles({"runs": size["runs"]})}
    assert sorted(table["run"]) == sorted(n.split("/")[-1] for n in runs) and set(table["source"]) == {"hub"}
    # every block and role at every step, each run once although `runs` and size s name the same runs
    assert list(table["matrices"]) == [len(HUB_STEPS) * 4 * 4] * len(runs)
    assert totals["matrices"] == len(runs) * len(HUB_STEPS) * 16
    size = 0  # the bytes of the tensors the matrices are made of, as the safetensors files say
    for repo in runs:
        for step in HUB_STEPS:
            folder = next(f for f in hub.repos[repo].values() if "model.safetensors" in f)["model.safetensors"].path
            with safe_open(folder, "np") as f:
                size += sum(f.get_slice(n).get_shape()[0] * f.get_slice(n).get_shape()[1] * 4 for n in f.keys()
                            if n.endswith(".weight") and any(k in n for k in ("query_key_value", "attention.dense",
                                                                               "dense_h_to_4h", "dense_4h_to_h")))
    assert totals["bytes"] == size
    # once a size is computed, its matrices are cached
    m_runs = results.Results(cfg).size("m")
    assert len(m_runs.spectra) == len(HUB_STEPS) * 16
    table, after = plan.plan(cfg)
    assert dict(zip(table["run"], table["cached matrices"])) == {n.split("/")[-1]: (len(HUB_STEPS) * 16 if s == "m" else 0)
                                                                 for n, s in runs.items()}


def test_recorded_plan_of_the_pythia_suite_when_the_hub_cannot_be_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and nothing cached: every run from the recorded shapes
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))
    cfg = config.load(profile="pythia-suite")
    recorded = json.loads(plan.RECORDED.read_text())["models"]
    # the profile's parameter counts are those of the recorded shapes (Pythia's published totals)
    assert {s["name"]: s["parameters"] for s in cfg["sizes"]} == {n: plan.neox_parameters(m) for n, m in recorded.items()}
    assert plan.neox_parameters(recorded["70m"]) == 70_426_624
    table, totals = plan.plan({**cfg, "sizes": [s for s in cfg["sizes"] if s["name"] in ("14m", "12b")]})
    assert set(table["source"]) == {"recorded"}
    rows = table.set_index("run")
    d, layers = 5120, 36
    assert rows.loc["pythia-12b", "matrices"] == rows.loc["pythia-12b-deduped", "matrices"] == 154 * layers * 4
    assert rows.loc["pythia-12b", "bytes"] == 154 * layers * 12 * d * d * 2  # qkv 3d², dense d², MLP 2·4d², fp16
    assert rows.loc["pythia-14m", "steps"] == 154 and rows.loc["pythia-14m", "matrices"] == 154 * 6 * 4
    assert "pythia-14m-deduped" not in rows.index  # 14m has no deduplicated run
    assert totals["recorded"] and "DERIVED from analysis/data/pythia-shapes.json" in plan.describe(table, totals)
    # a branch known to hold no weights is left out, as HubRun leaves it out
    seed2 = plan.RecordedRun("EleutherAI/pythia-410m-seed2", recorded["410m"], list(range(3)) + [111000], "float16")
    assert seed2.steps == [0, 1, 2]
    # the hub's answer wins where there is one: a run the recorded file does not know is an error
    with pytest.raises(plan.TransientError, match="HF_HUB_OFFLINE"):
        plan.plan({**cfg, "sizes": [], "runs": {"reference": "EleutherAI/not-pythia", "treatment": None, "replicas": []}})

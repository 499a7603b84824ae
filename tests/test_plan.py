"""The plan: what compute would solve and read, told from checkpoint metadata alone."""

import pytest

from analysis import config, plan, results
from analysis.architectures import tensor_names
from analysis.checkpoints import checkpoint, formats
from analysis.cli import main

from .conftest import fresh_cache, smoke_config


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
    assert totals["cached matrices"] == 0 and totals["cached bytes"] == 0 and totals["CPU s (est.)"] > 0

    r = results.Results(smoke)
    solved = r.spectra  # what compute actually solves for these settings
    assert totals["matrices"] == len(solved) == table["matrices"].sum()
    per_run = {name: sum(x["run"] == name for x in solved) for name in r.runs}
    assert dict(zip(table["run"], table["matrices"])) == per_run
    assert dict(zip(table["run"], table["steps"])) == {n: len(s) for n, s in r.steps.items()}

    # bytes: the byte size of every tensor those matrices are made of, as read
    size = 0
    for x in solved:
        ck = r.runs[x["run"]].checkpoint(x["step"])
        names = tensor_names(ck.architecture, x["role"], x["block"], ck.n_layers)
        size += sum(t.nbytes for t in ck.tensors(names).values())
    assert totals["bytes"] == size

    # after compute every matrix is in the results cache: nothing left to solve
    with monkeypatch.context() as m:
        no_tensor_reads(m)
        table, after = plan.plan(smoke)
    assert after["cached matrices"] == after["matrices"] == len(solved)
    assert after["cached bytes"] == after["bytes"] == size
    assert after["CPU s (est.)"] == 0 and after["shapes"] == {}


def test_plan_follows_roles_block_and_steps(smoke):
    r = results.Results(smoke)
    first, middle, last = r.runs[r.reference].steps[:3]
    cfg = {**smoke, "roles": ["qkv"], "steps": [first, middle, last], "depth_steps": [first], "block": 1}
    table, totals = plan.plan(cfg)
    # the first and last steps read every block (the last always does), the middle one block 1; one role
    assert list(table["matrices"]) == [2 * r.n_layers + 1] * len(table) == [9] * 3
    with pytest.raises(config.ConfigError, match="has no step"):
        plan.plan({**smoke, "steps": [0, 999]})


def test_estimate_uses_measured_shapes_else_scales_from_the_nearest(tmp_path):
    log = tmp_path / "spectra.log"
    log.write_text("role shape kind ours\nqkv        6144x2048  random    0.694   2.364\n"
                   "attn_out   2048x2048  random    0.416   1.230\n")
    costs = plan.measured_costs(log)
    assert plan.solve_cost((2048, 2048), costs) == (0.416, (2048, 2048), False)
    seconds, near, scaled = plan.solve_cost((1024, 1024), costs)
    assert near == (2048, 2048) and scaled and seconds == pytest.approx(0.416 / 8)
    (tmp_path / "empty.log").write_text("nothing measured\n")
    with pytest.raises(plan.CheckpointError, match="no 'role ROWSxCOLS"):
        plan.measured_costs(tmp_path / "empty.log")


def test_cli_prints_the_plan_and_one_line_errors(smoke, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", smoke["cache_dir"])
    assert main(["plan", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "| total" in out and "ESTIMATE" in out and "spectra-cpu-2core.log" in out
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path))  # no suite trained there: no training either
    assert main(["plan", "--profile", "smoke"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-tiny" in err and not (tmp_path / "tiny-suite").exists()

"""The results layer on the smoke suite: every table computed once, read back exactly."""

import numpy as np
import pytest

from analysis import compute, results
from analysis.checkpoints import CheckpointError

from .conftest import fresh_cache, smoke_config


@pytest.fixture(scope="module")
def smoke_results(corpus_cache, tmp_path_factory):
    cfg = smoke_config(fresh_cache(corpus_cache, tmp_path_factory.mktemp("results-cache")))
    r = results.Results(cfg)
    r.fill()
    return cfg, r


@pytest.mark.slow
def test_every_table_is_computed_once_and_read_back_exactly(smoke_results):
    cfg, r = smoke_results
    warm = results.Results(cfg)
    for name in compute.TABLES:
        a, b = getattr(r, name), getattr(warm, name)
        if hasattr(a, "equals"):
            assert a.equals(b), name
        elif isinstance(a, list):
            assert len(a) == len(b) and all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x), name
        else:
            assert all(np.array_equal(a[k], b[k]) for k in a), name
    assert warm.store.misses == 0  # nothing recomputed


@pytest.mark.slow
def test_tables_cover_runs_by_role_and_draws(smoke_results):
    cfg, r = smoke_results
    assert r.names == {"raw": "reference", "deduped": "treatment", "raw-seed2": "replica"}
    assert set(r.measures.run) == set(r.names) and set(r.measures.block) == set(range(r.n_layers))
    draws = r.draws
    assert set(draws.kind) == {"gaussian", "logistic", "shuffled"}
    assert draws.draw.nunique() == cfg["verdicts"]["draws"]
    rec = r.records(role="qkv", step=r.last_step())[0]
    assert rec["gaussian"].shape == (cfg["verdicts"]["draws"], rec["sv"].shape[0])
    assert set(r.verdicts.claim) == {1, 2, 3, 4}
    assert set(r.verdicts.verdict) <= {"holds", "does not hold", "undecided"}
    assert r.toy["width"] == 32  # the model's width (smoke: d_model 32)


@pytest.mark.slow
def test_a_chapter_alone_fills_only_what_it_reads(corpus_cache, tmp_path):
    cfg = smoke_config(fresh_cache(corpus_cache, tmp_path))
    r = results.Results(cfg)
    r.fill(results.CHAPTER_TABLES["audit"])
    kinds = {p.parent.parent.name for p in (tmp_path / "results").rglob("*.npz")}
    assert kinds == {"table"}  # the audit table only: no spectra solved


@pytest.mark.slow
def test_depth_steps_read_every_block_only_there_and_the_middle_block_everywhere(corpus_cache, tmp_path):
    cfg = smoke_config(fresh_cache(corpus_cache, tmp_path))
    r = results.Results({**cfg, "depth_steps": 3})
    steps = r.steps[r.reference]
    deep = r.depth_steps[r.reference]
    assert len(deep) == 3 and deep[0] == steps[0] and deep[-1] == steps[-1]
    read = {(x["step"], x["block"]) for x in r.spectra if x["run"] == r.reference}
    assert read == {(s, b) for s in steps for b in (range(r.n_layers) if s in deep else [r.block])}
    assert {x["step"] for x in r.records(block="all")} == set(deep)
    assert set(r.verdicts.claim) == {1, 2, 3, 4}  # every claim still judged


def test_depth_steps_are_chosen_once_among_the_steps_every_run_has(tmp_path):
    # runs whose step lists differ: picked per run, log-spaced picks land on steps others lack
    ref = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 143000]
    treat = [s for s in ref if s not in (2, 8, 32, 128, 512, 2000, 8000, 32000)]
    rep = [s for s in ref if s != 4]
    for suite, setting in (("hub", "auto"), ("hub", 5), ("tiny", "auto"), ("hub", "all")):
        r = results.Results({"cache_dir": str(tmp_path), "suite": suite, "depth_steps": setting})
        r.__dict__.update(steps={"a": ref, "b": treat, "c": rep}, names={"a": "reference", "b": "treatment", "c": "replica"})
        if suite == "hub" and setting != "all":  # the steps read at depth are the same for every run
            assert all(r.depth_steps[n] == r.depth_steps["a"] for n in "bc") and set(r.depth_steps["a"]) <= set(treat)
        shared = r.shared_depth_steps
        common = set(ref) & set(treat) & set(rep)
        assert shared and set(shared) <= common and shared[-1] == 143000, (suite, setting, shared)
        for name, steps in r.depth_steps.items():
            assert set(shared) <= set(steps) <= set(r.steps[name])
        if setting in ("auto", 5) and suite == "hub":
            assert len(shared) == (12 if setting == "auto" else 5) or len(shared) == len(common)
        else:  # every step of each run reads every block; the runs are compared where all have
            assert set(shared) == common
    r = results.Results({"cache_dir": str(tmp_path), "suite": "hub", "depth_steps": "auto"})
    r.__dict__.update(steps={"a": [0, 1], "b": [2, 3]})
    with pytest.raises(CheckpointError, match="the runs share no analysed step"):
        r.depth_steps  # noqa: B018

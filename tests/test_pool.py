"""Training runs side by side (analysis/checkpoints/tiny/pool.py): how many at once, in
processes of their own, with the same bits as one after another in this process."""

import os

import pytest
import torch
from safetensors.torch import load_file

from analysis.checkpoints.tiny import pool, train

from .conftest import fresh_cache, smoke_settings
from .test_tiny_suite import serial


def test_jobs_that_fill_rounds_run_on_the_cores_others_all_at_once():
    assert pool.processes(4, 2) == 2 and pool.processes(14, 2) == 2  # whole rounds: no oversubscription
    assert pool.processes(5, 2) == 5 and pool.processes(3, 2) == 3  # rounds of 2 would leave a core idle
    assert pool.processes(9, 2) == 5  # over MAX_PER_CORE × cores: the fewest rounds (2), evenly filled
    assert pool.processes(1, 8) == 1 and pool.processes(0, 2) == 1 and pool.processes(3, 8) == 3


def _pid(i):
    return i, os.getpid()


def _fail(i):
    if i == 1:
        raise ValueError("broken job")
    return i


def test_each_job_runs_in_a_process_of_its_own_and_results_keep_job_order():
    out = pool.run_all(_pid, [(i,) for i in range(3)], ["a", "b", "c"])
    assert [i for i, _ in out] == [0, 1, 2]
    assert len({pid for _, pid in out}) == 3 and os.getpid() not in {pid for _, pid in out}  # 3 jobs, 2 cores: 3 at once
    assert pool.run_all(_pid, [(7,)], ["only"]) == [(7, os.getpid())]  # one job: no process started


def test_a_failing_job_is_named():
    with pytest.raises(ValueError, match="job b: broken job"):
        pool.run_all(_fail, [(0,), (1,), (2,)], ["job a", "job b", "job c"])


@pytest.mark.slow
def test_runs_trained_side_by_side_have_the_bits_of_runs_trained_one_after_another(corpus_cache, tmp_path, monkeypatch):
    """One torch thread per run: where and beside what a run trains does not change its weights."""
    cfg = smoke_settings()
    parallel = train.build(cfg, fresh_cache(corpus_cache, tmp_path / "pool"))
    monkeypatch.setattr(train.pool, "run_all", serial)
    one_by_one = train.build(cfg, fresh_cache(corpus_cache, tmp_path / "serial"))
    assert len(cfg["runs"]) > 1
    for name in cfg["runs"]:
        for step in sorted(p.name for p in (parallel / name).iterdir() if p.name.startswith("step")):
            a, b = (load_file(s / name / step / "model.safetensors") for s in (parallel, one_by_one))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (name, step)

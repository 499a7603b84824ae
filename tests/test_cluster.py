"""Compute on a Dask cluster: the same records, bit for bit, as in this process; a killed
worker's tasks done again elsewhere; a finished job resubmitted does nothing; the results
cache on an fsspec URL; the `cluster` and `results_cache` settings checked."""

import os
import signal
import threading
import time
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from analysis import compute, config, extract, results, spectra
from analysis.cluster import run as run_on_cluster
from analysis.config import ConfigError
from analysis.store import Store
from analysis.testing.fake_hub import FakeHub, client_on, point_client_at, restore_client

from .conftest import ROOT, smoke_config
from .test_hub import neox_folder

TABLES = ("measures", "draws", "run_distances")  # what the records feed, compared exactly
HUB_RUNS = {"reference": "EleutherAI/pythia-tiny", "treatment": "EleutherAI/pythia-tiny-deduped",
            "replicas": ["EleutherAI/pythia-tiny-seed1"]}
HUB_STEPS = (0, 1, 2, 4)


def record_files(results_cache) -> dict:
    """{path under results/spectrum: the record file's bytes}."""
    fs, root = fsspec.core.url_to_fs(str(results_cache))
    top = f"{root.rstrip('/')}/results/spectrum"
    # a writer killed mid-write may leave its temporary (".name.tmp-*"), never read as a record
    return {p[len(top):]: fs.cat_file(p) for p in fs.find(top) if not p.rsplit("/", 1)[-1].startswith(".")}


def same_results(a: results.Results, b: results.Results) -> None:
    """Every spectrum record file and every table they feed, bit for bit."""
    assert len(a.spectra) == len(b.spectra) > 0
    files = record_files(a.store.url)
    assert len(files) == len(a.spectra) and files == record_files(b.store.url)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


# --- settings and the store (fast) ------------------------------------------------------


def _validate(**over):
    cfg = {**config.load(root=ROOT), **over}
    config._validate(cfg)


@pytest.mark.parametrize("setting", ["locall", 3, {"kind": "slurm"}, {"kind": "local", "workers": 0},
                                     {"kind": "local", "threads": 2}, {"kind": "local", "processes": "yes"},
                                     "127.0.0.1:8786"])
def test_a_bad_cluster_setting_is_an_error_naming_it_and_the_forms(setting):
    with pytest.raises(ConfigError, match=r"analysis\.cluster: expected null, 'local', a scheduler address"):
        _validate(cluster=setting)


@pytest.mark.parametrize("setting", [None, "local", "tcp://10.0.0.5:8786",
                                     {"kind": "local", "workers": 2, "threads_per_worker": 1, "processes": True}])
def test_the_cluster_forms_are_accepted(setting):
    _validate(cluster=setting)


def test_a_memory_cache_with_worker_processes_is_refused_and_threads_allowed():
    with pytest.raises(ConfigError, match=r"analysis\.results_cache: 'memory://r' lives in one process's memory"):
        _validate(cluster="local", results_cache="memory://r")
    _validate(cluster={"kind": "local", "processes": False}, results_cache="memory://r")
    _validate(cluster=None, results_cache="memory://r")
    with pytest.raises(ConfigError, match=r"analysis\.results_cache: expected null, a path or an fsspec URL"):
        _validate(results_cache=5)


@pytest.mark.parametrize("url", ["memory://store-test", "file://{tmp}", "{tmp}"])
def test_store_keeps_records_on_an_fsspec_url(url, tmp_path):
    store = Store(url.format(tmp=tmp_path))
    key, rec = {"kind": "spectrum", "weights": "ab"}, {"sv": np.arange(4.0), "rows": 3}
    assert not store.has(key) and store.get(key) is None
    store.put(key, rec)
    again = Store(store.url).get(key)  # another Store object (another worker) reads it back
    assert store.has(key) and np.array_equal(again["sv"], rec["sv"]) and again["rows"] == 3
    if "memory" not in url:  # local: the same file whether named by path or file:// URL
        assert Path(store.path(key)).is_file() and Store(f"file://{tmp_path}").path(key) == Store(tmp_path).path(key)


def test_writers_of_one_record_never_show_a_reader_half_a_file(tmp_path):
    """Two workers that solve the same matrix (a task retried while its first worker still
    runs) write the same record: each renames a whole file over the name, so a reader sees
    the record whole or not at all."""
    store, key = Store(tmp_path), {"kind": "spectrum", "weights": "same"}
    rec = {"sv": np.random.default_rng(0).normal(size=200_000)}  # 1.6 MB: a write takes a while
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            got = store.get(key)
            if got is not None:
                seen.append(np.array_equal(got["sv"], rec["sv"]))

    def write():
        for _ in range(10):
            store.put(key, rec)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write) for _ in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert seen and all(seen)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [Path(store.path(key)).name]  # no temp left


def test_an_unreachable_scheduler_is_an_error_naming_the_setting(monkeypatch):
    import analysis.cluster

    monkeypatch.setattr(analysis.cluster, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(ConfigError, match=r"analysis\.cluster: cannot reach the scheduler at 'tcp://127\.0\.0\.1:9'"):
        run_on_cluster("tcp://127.0.0.1:9", "numpy", len, [("x",)], progress=False)


def test_a_task_reading_other_weights_than_its_key_says_is_an_error(tmp_path):
    """What a worker with another copy of a run's folder would do: refuse, not file its
    spectra under the planner's key."""

    class Ckpt:
        content_hash = "b" * 16

    class Run:
        def checkpoint(self, step):
            return Ckpt()

    cfg = {**config.load(root=ROOT), "results_cache": str(tmp_path), "backend": "numpy"}
    unit = {"run": "raw", "step": 4, "jobs": [{"block": 0, "role": "qkv", "key": {"kind": "spectrum", "weights": "a" * 16}}]}
    with pytest.raises(extract.CheckpointError, match=r"run 'raw' step 4: the weights read here hash to b+, the records "
                                                      r"asked for are keyed by a+"):
        extract.solve(cfg, {"raw": Run()}, [unit], progress=False)
    assert not list(tmp_path.rglob("*.npz"))


def test_a_batch_split_over_threads_gives_the_same_records():
    """The in-process path solves a batch's matrices side by side; each on one thread with one
    BLAS thread, so the split changes no bit (what lets it match a cluster's one-thread tasks)."""
    cfg = {"seed": 0, "verdicts": {"draws": 3}}
    ws = np.random.default_rng(0).standard_normal((5, 48, 16)) * 0.02
    ids = [("raw", 4, b, "qkv") for b in range(5)]
    with spectra.one_blas_thread():
        one = extract.solve_batch(ws, ids, cfg, np, 2**30, threads=1)
        three = extract.solve_batch(ws, ids, cfg, np, 2**30, threads=3)
    assert len(one) == len(three) == 5
    assert all(x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(one, three))


def test_blas_is_one_thread_inside_a_solve_and_restored_after():
    """Held from this (the main) thread, as the in-process path and a threads-only cluster do;
    threads solving side by side then share the limit, and the last user restores it."""
    from threadpoolctl import threadpool_info

    blas = lambda: {x["num_threads"] for x in threadpool_info() if x["user_api"] == "blas"}  # noqa: E731
    before, seen, errors = blas(), [], []

    def solve_like():
        try:
            with spectra.one_blas_thread():
                seen.append(blas())
                time.sleep(0.05)  # overlap the other thread's solve
                seen.append(blas())
        except Exception as e:  # noqa: BLE001 (a thread's error would otherwise be lost)
            errors.append(e)

    with spectra.one_blas_thread():
        threads = [threading.Thread(target=solve_like) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(seen) == 4 and all(x == {1} for x in seen), (errors, seen)
    assert blas() == before


def test_records_a_cluster_job_leaves_unreadable_here_name_results_cache(tmp_path, monkeypatch):
    """Workers that wrote to their own disks: the job 'finishes', the records are not here."""
    import analysis.cluster

    monkeypatch.setattr(analysis.cluster, "run", lambda *a, **k: [0])  # tasks that store nothing here
    cfg = {**config.load(root=ROOT), "results_cache": str(tmp_path), "cluster": "tcp://10.0.0.5:8786"}
    jobs = [{"run": "raw", "step": 4, "block": 0, "role": "qkv", "key": {"kind": "spectrum", "weights": "a"}}]
    with pytest.raises(ConfigError, match=r"analysis\.results_cache: the cluster's tasks finished but 1 of their "
                                          r"records are not in"):
        extract.solve_missing(cfg, {}, jobs, progress=False)


# --- on a cluster -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster():
    """Two worker processes of one thread each, as the issue asks."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="module")
def smoke_in_process(smoke_suite, tmp_path_factory):
    cfg = {**smoke_config(smoke_suite.parents[1]), "results_cache": str(tmp_path_factory.mktemp("smoke-local"))}
    r = results.Results(cfg)
    r.spectra  # noqa: B018
    return r


@pytest.mark.slow
def test_local_cluster_setting_gives_the_in_process_records_bit_for_bit(smoke_in_process, tmp_path, capfd):
    cfg = {**smoke_in_process.cfg, "results_cache": str(tmp_path / "r"),
           "cluster": {"kind": "local", "workers": 2, "threads_per_worker": 1}}
    on_cluster = results.Results(cfg, progress=True)
    same_results(on_cluster, smoke_in_process)
    err = capfd.readouterr().err
    assert "Dask dashboard: http://" in err and "(2 workers)" in err and "task/s" in err


@pytest.mark.slow
def test_a_finished_job_resubmitted_solves_nothing(smoke_in_process, dask_cluster):
    r, address = smoke_in_process, dask_cluster.scheduler_address
    cfg = {**r.cfg, "cluster": address}
    jobs = extract.jobs_of(cfg, r.runs, compute.spectra_plan(r))
    before = {p: os.stat(p).st_mtime_ns for p in Path(r.store.url).rglob("*.npz")}
    assert len(jobs) == len(r.spectra)
    assert extract.solve_missing(cfg, r.runs, jobs, progress=False) == []  # the driver submits no task
    # the same units sent anyway (a job whose tasks were queued before it was stopped): each
    # task finds its records stored and solves nothing
    units = {}
    for j in jobs:
        units.setdefault((j["run"], j["step"]), {"run": j["run"], "step": j["step"], "jobs": []})["jobs"].append(
            {k: j[k] for k in ("block", "role", "key")})
    solved = run_on_cluster(address, "numpy", extract.solve_task, [(cfg, u) for u in units.values()], progress=False)
    assert len(solved) == len(units) > 1 and sum(solved) == 0
    assert {p: os.stat(p).st_mtime_ns for p in Path(r.store.url).rglob("*.npz")} == before


@pytest.mark.slow
def test_threads_only_cluster_shares_a_memory_results_cache(smoke_in_process):
    cfg = {**smoke_in_process.cfg, "results_cache": "memory://cluster-test",
           "cluster": {"kind": "local", "workers": 2, "threads_per_worker": 1, "processes": False}}
    same_results(results.Results(cfg), smoke_in_process)


# --- a hub-shaped suite served by the fake hub ---------------------------------------------


@pytest.fixture(scope="module")
def hub_checkpoints(tmp_path_factory):
    """Three runs of a 4-block GPT-NeoX, four Pythia-named steps each, random weights."""
    src = tmp_path_factory.mktemp("hub-src")
    for i, repo in enumerate([HUB_RUNS["reference"], HUB_RUNS["treatment"], *HUB_RUNS["replicas"]]):
        for step in HUB_STEPS:
            neox_folder(src / repo / f"step{step}", 100 * i + step, "safetensors")
    return src


def hub_settings(hub_checkpoints, hub, cache: Path, **over) -> dict:
    for repo in [HUB_RUNS["reference"], HUB_RUNS["treatment"], *HUB_RUNS["replicas"]]:
        for step in HUB_STEPS:
            hub.add(repo, f"step{step}", hub_checkpoints / repo / f"step{step}")
    cfg = {**config.load(root=ROOT), "suite": "hub", "runs": HUB_RUNS, "backend": "numpy",
           "cache_dir": str(cache), **over}
    config._validate(cfg)
    return cfg


@pytest.fixture()
def fake_hub_for(dask_cluster):
    """A fake hub that this process and the cluster's workers (running and restarted) talk to."""
    from distributed import Client

    def start(latency=0.0):
        hub = FakeHub(latency=latency)
        hub.__enter__()
        old = point_client_at(hub.url)  # sets HF_ENDPOINT too: what a restarted worker starts with
        with Client(dask_cluster) as c:
            c.run(point_client_at, hub.url)
        opened.append((hub, old))
        return hub

    opened = []
    yield start
    for hub, old in opened:
        restore_client(old)
        hub.__exit__()


@pytest.fixture(scope="module")
def hub_in_process(hub_checkpoints, tmp_path_factory):
    """The hub suite's records and tables computed in this process (on a hub of its own)."""
    with FakeHub() as hub, client_on(hub.url):
        r = results.Results(hub_settings(hub_checkpoints, hub, tmp_path_factory.mktemp("hub-local")))
        for name in TABLES:
            getattr(r, name)
    assert len(r.spectra) == 3 * len(HUB_STEPS) * 4 * 4  # every block at every step: few steps
    return r


def workers(cluster) -> list[str]:
    from distributed import Client

    with Client(cluster) as c:
        c.wait_for_workers(2, timeout=60)
        return sorted(c.scheduler_info()["workers"])


@pytest.mark.slow
def test_hub_suite_on_a_cluster_by_address_matches_in_process(hub_in_process, hub_checkpoints, fake_hub_for,
                                                              dask_cluster, tmp_path):
    hub = fake_hub_for()
    remote = results.Results(hub_settings(hub_checkpoints, hub, tmp_path, cluster=dask_cluster.scheduler_address))
    same_results(remote, hub_in_process)


@pytest.mark.slow
def test_a_worker_killed_mid_job_and_the_job_still_finishes_identical(hub_in_process, hub_checkpoints, fake_hub_for,
                                                                      dask_cluster, tmp_path):
    hub = fake_hub_for(latency=0.05)  # each task waits on a few requests: time to kill one mid-job
    cfg = hub_settings(hub_checkpoints, hub, tmp_path, cluster=dask_cluster.scheduler_address)
    total, killed, before = len(hub_in_process.spectra), {}, workers(dask_cluster)

    def kill_one_worker_once_records_appear():
        folder = tmp_path / "results" / "spectrum"
        while not killed:
            done = sum(not p.name.startswith(".") for p in folder.rglob("*.npz")) if folder.exists() else 0
            # a worker holding a task right now: killing it makes Dask run that task again elsewhere
            busy = {a for a, w in dask_cluster.scheduler.workers.items() if w.processing}
            nanny = next((n for n in dask_cluster.workers.values() if n.worker_address in busy), None)
            if done and nanny is not None:
                killed.update(done=done, worker=nanny.worker_address)
                os.kill(nanny.process.process.pid, signal.SIGKILL)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker_once_records_appear, daemon=True)
    killer.start()
    remote = results.Results(cfg)
    remote.spectra  # noqa: B018
    killer.join(timeout=5)
    assert killed and 0 < killed["done"] < total  # killed mid-job
    after = workers(dask_cluster)  # the nanny started a new worker process, under a new address
    assert killed["worker"] in before and killed["worker"] not in after and len(after) == 2
    same_results(remote, hub_in_process)

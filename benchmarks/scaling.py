"""Wall time of one compute job (every spectrum record of a suite, from an empty results
cache) on Dask LocalClusters of 1 and 2 single-threaded worker processes, against the
in-process path (`cluster: null`, the baseline: the fastest standard way to do the job here),
and the records compared bit for bit.

Two jobs: the smoke suite from disk, and a hub-shaped suite (one 4-block GPT-NeoX run,
hidden size 128, 8 Pythia-named steps, random weights) served by the fake hub
(analysis.testing.fake_hub) with each answer delayed by `--latencies` seconds: simulated
network latency, where a worker reading one checkpoint while the other solves shows reading
overlapped with computing. Each path is warmed up by one untimed pass, then timed `--repeat`
times from an empty results cache (and, for the hub, an empty tensor cache), best kept and
slowest shown. Every path is driven from a child process of its own, kept for its passes,
so that no driver shares an interpreter with the fake hub's server threads, which run in
this one (as do the LocalClusters' schedulers; their workers are processes of their own). The clusters are started before timing (their start-up is printed apart) and reached
by their scheduler address, as `cluster: tcp://...` does.

`--default`: also the default build's job (every spectrum record of the tiny suite, which
must be trained: `make train-tiny`) in-process against `cluster: local`, the setting itself
(Dask's default LocalCluster for this machine, started inside the job and timed with it);
`--only-default`: that job alone, one pass each, no warm-up (a check of the records more
than a timing).

    python benchmarks/scaling.py [--repeat 2] [--latencies 0,0.05,0.2] [--default] [--log benchmarks/results/scaling-cpu-2core.log]
"""

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from analysis import config, results  # noqa: E402
from analysis.testing.fake_hub import FakeHub, point_client_at  # noqa: E402

REPO, STEPS = "EleutherAI/pythia-scaling", (0, 1, 2, 4, 8, 16, 32, 64)


def records(results_cache: Path) -> dict:
    top = results_cache / "results" / "spectrum"
    return {p.relative_to(top): p.read_bytes() for p in top.rglob("*.npz") if not p.name.startswith(".")}


def _job(cfg: dict) -> tuple[float, int]:
    """One job, timed where it runs. -> (seconds, matrices)"""
    start = time.perf_counter()
    n = len(results.Results(cfg).spectra)
    return time.perf_counter() - start, n


def timed(driver, cfg: dict, scratch: Path, fresh_tensors: bool) -> tuple[float, dict, int]:
    """One job from an empty results cache, driven from the process `driver` (a one-process
    pool kept for a path's passes, so its imports are warm after the warm-up) and not from
    this one, whose interpreter the fake hub's server threads share. -> (seconds, record
    files, matrices)"""
    rc = Path(tempfile.mkdtemp(dir=scratch, prefix="results-"))
    cfg = {**cfg, "results_cache": str(rc)}
    if fresh_tensors:  # the hub suite: every pass reads its tensors (and metadata) afresh
        cfg["cache_dir"] = tempfile.mkdtemp(dir=scratch, prefix="cache-")
    seconds, n = driver.submit(_job, cfg).result()
    out = records(rc)
    shutil.rmtree(rc)
    return seconds, out, n


def compare(label: str, cfg: dict, paths: dict, scratch: Path, repeat: int, fresh_tensors: bool, log,
            warmup: bool = True) -> None:
    best, spread, files = {}, {}, {}
    for name, cluster in paths.items():
        job = {**cfg, "cluster": cluster}
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as driver:
            if warmup:
                timed(driver, job, scratch, fresh_tensors)  # warm-up: imports, worker processes' first task
            runs = [timed(driver, job, scratch, fresh_tensors) for _ in range(repeat)]
        best[name] = min(s for s, _, _ in runs)
        spread[name] = max(s for s, _, _ in runs)
        files[name], n = runs[0][1], runs[0][2]
    base = best["in-process"]
    log(f"\n{label}: {n} matrices, best of {repeat} (slowest in brackets){'' if warmup else ', no warm-up pass'}")
    log(f"{'path':<22} {'wall s':>16} {'matrices/s':>11} {'in-process / path':>18} {'records':>24}")
    for name, s in best.items():
        same = "bit-identical" if files[name] == files["in-process"] else "DIFFER"
        log(f"{name:<22} {s:7.2f} ({spread[name]:6.2f}) {n / s:11.1f} {base / s:18.2f} "
            f"{same + ' (' + str(len(files[name])) + ')':>24}")


def hub_suite(src: Path, hub: FakeHub) -> None:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    shape = GPTNeoXConfig(vocab_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                          intermediate_size=512, rotary_pct=0.25, use_parallel_residual=True)
    for step in STEPS:
        folder = src / f"step{step}"
        torch.manual_seed(step)
        GPTNeoXForCausalLM(shape).save_pretrained(folder, safe_serialization=True)
        hub.add(REPO, f"step{step}", folder)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--latencies", default="0,0.05,0.2", help="fake hub seconds per answer, comma-separated")
    p.add_argument("--log", type=Path, default=None, help="also write the output here")
    p.add_argument("--default", action="store_true", help="also the default suite, in-process against cluster: local")
    p.add_argument("--only-default", action="store_true", help="the default suite's job alone")
    args = p.parse_args(argv)
    from distributed import Client, LocalCluster

    lines = []

    def log(line=""):
        print(line, flush=True)
        lines.append(line)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    log(f"# python benchmarks/scaling.py {' '.join(argv if argv is not None else sys.argv[1:])}  "
        f"({datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ}, commit {commit}{' + changes' if dirty else ''}, "
        f"{os.cpu_count()} cores, load {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    scratch = Path(tempfile.mkdtemp(prefix="scaling-"))
    hub = FakeHub()
    try:
        with hub:
            point_client_at(hub.url)  # before the workers start: they inherit HF_ENDPOINT
            hub_suite(scratch / "hub", hub)
            paths, clusters = {"in-process": None}, []
            for n in (() if args.only_default else (1, 2)):
                start = time.perf_counter()
                c = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
                with Client(c) as client:
                    client.wait_for_workers(n)
                log(f"LocalCluster({n} worker{'s' * (n > 1)} x 1 thread) started in {time.perf_counter() - start:.1f} s")
                paths[f"dask {n} worker{'s' * (n > 1)}"] = c.scheduler_address
                clusters.append(c)
            try:
                if args.default or args.only_default:
                    default = config.load(root=ROOT)
                    compare("default suite (tiny, trained; cluster: local started inside the job)", default,
                            {"in-process": None, "cluster: local": "local"}, scratch, args.repeat, False, log,
                            warmup=not args.only_default)
                if not args.only_default:
                    smoke = config.load(root=ROOT, profile="smoke")
                    from analysis.checkpoints.tiny.train import build

                    build(smoke["tiny"], Path(smoke["cache_dir"]))  # trained once, reused (not timed)
                    compare("smoke suite (tiny, from disk)", smoke, paths, scratch, args.repeat, False, log)
                    hub_cfg = {**config.load(root=ROOT), "suite": "hub", "backend": "numpy",
                               "runs": {"reference": REPO, "treatment": None, "replicas": []}}
                    for latency in (float(x) for x in args.latencies.split(",")):
                        hub.latency = latency
                        compare(f"hub-shaped suite, fake hub at {latency * 1000:.0f} ms an answer", hub_cfg, paths, scratch,
                                args.repeat, True, log)
            finally:
                for c in clusters:
                    c.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log("\nin-process / path > 1: the cluster is faster. Every path runs on this machine's cores, which the fake "
        "hub's server threads (in the benchmark's own process, apart from every driver) share with them.")
    if args.log:
        args.log.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

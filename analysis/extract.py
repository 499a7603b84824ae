"""Spectra of the configured matrices with their baseline draws, read and solved in batches
and cached one record per matrix.

A record is keyed by the weights' content hash, the tensor, the draw settings and the
matrix's identity (run, step, block, role), which also seeds its draws. The unit of work is
one checkpoint (run, step): its missing records read by range, solved and written to the
results cache (`solve`). It runs in this process, reading the next batch (disk or network)
while solving this one, or as one Dask task per unit on the `cluster` setting's workers
(`solve_task`): the same function either way, so records are the same bits.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm  # plain: the notebook widget variant needs ipywidgets

from .backend import array_module, memory_budget
from .baselines import KINDS, with_draws
from .checkpoints import CheckpointError, formats, open_runs
from .measures import unmeasurable
from .parallel import cores
from .spectra import one_blas_thread
from .store import Store, key_digest

SPECTRUM_VERSION = 5  # 4: `draws` independent draws per kind, seeded per matrix; 5: one BLAS thread a solve (same bits on any worker)


def spectrum_key(ckpt, run: str, step: int, role: str, block: int, cfg: dict) -> dict:
    return {"kind": "spectrum", "version": SPECTRUM_VERSION, "weights": ckpt.content_hash,
            "tensor": ckpt.tensor_name(role, block), "id": [run, step, block, role],
            "seed": cfg["seed"], "draws": cfg["verdicts"]["draws"]}


def prefetched(load, items):
    """Yield (item, load(item)), loading the next item in a thread while the caller works on
    the current one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load, items[0]) if items else None
        for i, item in enumerate(items):
            value = future.result()
            if i + 1 < len(items):
                future = pool.submit(load, items[i + 1])
            yield item, value


def spectra(cfg: dict, runs: dict, plan: dict, progress: bool = True) -> list[dict]:
    """Records {run, step, block, role, sv, gaussian: (draws, k), logistic, shuffled, fits,
    kurtosis, std, rows, cols, key} for plan: {run name: {step: [blocks]}}, in plan order;
    the missing ones solved first (solve_missing)."""
    jobs = jobs_of(cfg, runs, plan)
    solve_missing(cfg, runs, jobs, progress)
    store = Store.of(cfg)
    return [{**{k: j[k] for k in ("run", "step", "block", "role")}, **store.get(j["key"]), "key": key_digest(j["key"])}
            for j in jobs]


def jobs_of(cfg: dict, runs: dict, plan: dict) -> list[dict]:
    """One {run, step, block, role, key} per matrix of plan, in plan order."""
    jobs = []
    for name, steps in plan.items():
        for step, blocks in steps.items():
            ckpt = runs[name].checkpoint(step)
            for block in blocks:
                jobs += [{"run": name, "step": step, "block": block, "role": role,
                          "key": spectrum_key(ckpt, name, step, role, block, cfg)} for role in cfg["roles"]]
    return jobs


def solve_missing(cfg: dict, runs: dict, jobs: list[dict], progress: bool = True) -> list[int]:
    """Solve the jobs not yet in the results cache, one unit per checkpoint: in this process,
    or one Dask task per unit where `cluster` is set. -> matrices solved per unit (no unit,
    and no cluster started, when everything is cached)."""
    store, units = Store.of(cfg), {}
    for j in jobs:
        if not store.has(j["key"]):
            unit = units.setdefault((j["run"], j["step"]), {"run": j["run"], "step": j["step"], "jobs": []})
            unit["jobs"].append({k: j[k] for k in ("block", "role", "key")})
    units = list(units.values())
    if not units or not cfg.get("cluster"):
        return solve(cfg, runs, units, progress, threads=cores())
    from . import cluster

    solved = cluster.run(cfg["cluster"], cfg["backend"], solve_task, [(cfg, u) for u in units], progress, "spectra",
                         [f"spectra {u['run']} step {u['step']}" for u in units])
    lost = [j for u in units for j in u["jobs"] if not store.has(j["key"])]
    if lost:  # workers wrote where this process cannot read
        from .config import ConfigError

        raise ConfigError(f"analysis.results_cache: the cluster's tasks finished but {len(lost)} of their records are "
                          f"not in {store.url} as this process sees it; expected a results cache every worker and this "
                          "process share (a shared path or an fsspec URL such as s3://bucket/study)")
    return solved


_OPENED = {}  # settings digest -> opened runs, once per worker process


def solve_task(cfg: dict, unit: dict) -> int:
    """One Dask task: `solve` for one unit, the runs opened from the settings once per worker
    process. -> matrices solved (0 when a resubmitted or retried task finds them all stored)."""
    digest = key_digest(cfg)
    if digest not in _OPENED:
        _OPENED[digest] = open_runs(cfg)
    return solve(cfg, _OPENED[digest], [unit], progress=False)[0]


def solve(cfg: dict, runs: dict, units: list[dict], progress: bool = True, threads: int = 1) -> list[int]:
    """Read, solve and store the records of units [{run, step, jobs: [{block, role, key}]}],
    skipping a job whose record is stored (so a unit done twice writes nothing twice). A
    (run, step, role) batch at a time: a role's blocks share a shape, so they and their draws
    go through one batched eigensolve, split over `threads` threads on NumPy (this process's
    cores; a Dask task takes one, its worker's thread). -> matrices solved per unit"""
    store, xp = Store.of(cfg), array_module(cfg["backend"])
    groups = {}
    for i, u in enumerate(units):
        ckpt = runs[u["run"]].checkpoint(u["step"])
        wrong = {j["key"]["weights"] for j in u["jobs"]} - {ckpt.content_hash}
        if wrong:  # a worker that sees other weights than the driver keyed would file them under its key
            raise CheckpointError(f"run {u['run']!r} step {u['step']}: the weights read here hash to "
                                  f"{ckpt.content_hash}, the records asked for are keyed by {', '.join(sorted(wrong))}; "
                                  "expected every worker to read the same checkpoint as the process that planned the job "
                                  "(same folder contents or hub commit)")
        for j in u["jobs"]:
            if not store.has(j["key"]):
                groups.setdefault((i, j["role"]), []).append({**j, "run": u["run"], "step": u["step"], "ckpt": ckpt, "unit": i})
    # A checkpoint's missing matrices are read together on its first group (coalesced,
    # concurrent ranges: a few requests per checkpoint instead of one per matrix).
    wanted = {}
    for g in groups.values():
        wanted.setdefault(g[0]["unit"], []).extend((j["role"], j["block"]) for j in g)

    def load(g):
        pairs = wanted.pop(g[0]["unit"], None)
        if pairs:
            g[0]["ckpt"].prefetch(pairs)
        ws = [j["ckpt"].matrix(j["role"], j["block"]) for j in g]
        odd = next((j for j, w in zip(g, ws) if w.shape != ws[0].shape), None)
        if odd is not None:  # one role, one shape: else a block was written for another model
            raise CheckpointError(f"run {odd['run']!r} step {odd['step']}: {odd['role']} of block {odd['block']} "
                                  f"({odd['key']['tensor']}) is {ws[g.index(odd)].shape} (out, in), of block "
                                  f"{g[0]['block']} {ws[0].shape}; expected every block's {odd['role']} to share a shape")
        return np.stack(ws)

    solved = [0] * len(units)
    todo = sum(len(g) for g in groups.values())
    bar = tqdm(total=todo, desc="spectra", unit="matrix", disable=not progress or not todo)
    moved = formats.bytes_read()
    budget = memory_budget(xp, cfg["memory"]["device_fraction"], int(cfg["memory"]["host_gib"] * 2**30))
    # One BLAS thread: a record's bits then do not depend on the cores of whoever solves it (in
    # this process or on any worker; with 2 threads 1 of 128 width-128 records differed in its
    # last bits); and on the shared 2-core machine (load 8) that job of 128 width-128 matrices
    # took 22 s instead of 210 s (measured once, 2026-12-05). More cores: matrices side by side
    # (solve_batch's threads here, a cluster's workers there), one thread each.
    with one_blas_thread(), bar:  # an error ends the bar's line, so the error's own line stands alone
        for group, ws in prefetched(load, list(groups.values())):
            ids = [(j["run"], j["step"], j["block"], j["role"]) for j in group]
            for job, rec in zip(group, solve_batch(ws, ids, cfg, xp, budget, threads)):
                rec.update(std=rec["gaussian_scale"], rows=ws.shape[1], cols=ws.shape[2])
                bad = [k for k, v in rec.items() if np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all()]
                where = f"run {job['run']!r} step {job['step']} block {job['block']} {job['role']}"
                if bad:  # never cache a record that measures would turn into NaN
                    raise CheckpointError(f"{where}: tensor {job['key']['tensor']!r} gives non-finite {', '.join(bad)}; "
                                          "expected a finite spectrum")
                whys = [unmeasurable(rec["sv"], *ws.shape[1:])] + [
                    f"its {kind} draw {i} of {why}" for kind in KINDS for i, s in enumerate(rec[kind])
                    if (why := unmeasurable(s, *ws.shape[1:]))]
                why = next((w for w in whys if w), "")
                if why:  # its alpha would be NaN (or a fit to rounding noise) in measures and draws
                    raise CheckpointError(f"{where}: tensor {job['key']['tensor']!r} has {why}")
                store.put(job["key"], rec)
            solved[group[0]["unit"]] += len(group)
            bar.set_postfix_str(f"{(formats.bytes_read() - moved) / 1e6:.1f} MB read", refresh=False)
            bar.update(len(group))
    return solved


def solve_batch(ws, ids: list[tuple], cfg: dict, xp, budget: int, threads: int = 1) -> list[dict]:
    """with_draws over ws: (b, out, in), in `threads` parts side by side on NumPy (LAPACK and
    BLAS release the GIL). Each matrix is solved whole on one thread with one BLAS thread and
    its draws are seeded by its id, so a record's bits do not depend on the split; the memory
    budget is shared between the parts."""
    parts = [p for p in np.array_split(np.arange(len(ws)), max(1, min(threads, len(ws)))) if len(p)]
    if xp is not np or len(parts) == 1:
        return with_draws(ws, ids, cfg["seed"], cfg["verdicts"]["draws"], xp, budget)
    with ThreadPoolExecutor(len(parts)) as pool:
        done = pool.map(lambda p: with_draws(ws[p], [ids[i] for i in p], cfg["seed"], cfg["verdicts"]["draws"], xp,
                                             budget // len(parts)), parts)
        return [rec for part in done for rec in part]

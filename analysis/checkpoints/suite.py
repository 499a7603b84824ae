"""The runs the settings name, opened in role order; which of their steps to read; a table of them."""

import json
from pathlib import Path

import numpy as np

from .. import config
from .checkpoint import CheckpointError
from .errors import is_transient
from .folder import Run


def _suite_folder(cfg: dict) -> Path:
    """The folder holding one sub-folder per run (the tiny suite is trained on first use)."""
    if cfg["suite"] == "tiny":
        from .tiny import suite_folder

        return suite_folder(cfg["tiny"], Path(cfg["cache_dir"]))
    return Path(cfg["root"]) / cfg["folder"]


def open_runs(cfg: dict) -> dict:
    """{run.name: run} for the runs in `analysis.runs`, in role order (reference, treatment,
    replicas); each run's `role` attribute says which. Hub runs are repo ids in the settings
    (`EleutherAI/pythia-1b`) and keyed by the repo's name (`pythia-1b`)."""
    roles = config.run_roles(cfg)
    if cfg["suite"] == "hub":
        from .hub import HubRun, rule_for

        opened = [(HubRun(repo, cfg["cache_dir"], rule=rule_for(repo, cfg["revisions"])), role)
                  for repo, role in roles.items()]
    else:
        folder = _suite_folder(cfg)
        opened = [(Run(name, folder / name), role) for name, role in roles.items()]
    runs = {}
    for run, role in opened:
        if run.name in runs:  # two repos of different owners with one name
            raise CheckpointError(f"analysis.runs: two runs are both named {run.name!r}; "
                                  "runs are told apart by name in every table and figure")
        run.role = role
        runs[run.name] = run
    return runs


def select_steps(run, steps, setting: str = "analysis.steps") -> list[int]:
    """A steps setting ("all" or a list; its name: `setting`) resolved against what the run has."""
    if steps == "all":
        return run.steps
    missing = [s for s in steps if s not in run.steps]
    if missing:  # a setting that names what is not there: a settings error (exit 2)
        raise config.ConfigError(f"{setting}: run {run.name!r} has no step(s) {missing}; it has {run.steps}")
    return list(steps)


def first_readable(run):
    """The first step's checkpoint whose config gives the model's shape: what a run's
    architecture and block count are read from. A broken early step is left to the audit."""
    errors = []
    for step in run.steps:
        try:
            ck = run.checkpoint(step)
            ck.n_layers, ck.n_heads  # noqa: B018  (raise here if the config cannot say)
            return ck
        except CheckpointError as e:
            if is_transient(e):  # says nothing about this step: the next would fail alike
                raise
            errors.append(f"step {step}: {e}")
    raise CheckpointError(f"run {run.name!r}: no step has a readable checkpoint ({errors[0]}"
                          f"{f'; and {len(errors) - 1} more' if len(errors) > 1 else ''})")


def log_spaced(steps: list[int], n: int) -> list[int]:
    """Up to n of `steps` spread evenly in log(step): the first and last always, then the
    step nearest each of n - 2 log-spaced points between (step 0 counts as step 1)."""
    steps = sorted(steps)
    if len(steps) <= n:
        return steps
    logs = np.log(np.maximum(steps, 1))
    targets = np.linspace(logs[0], logs[-1], n)[1:-1]
    picks = {0, len(steps) - 1} | {int(np.abs(logs - t).argmin()) for t in targets}
    return [steps[i] for i in sorted(picks)]


def depth_steps(setting, suite: str, steps: list[int]) -> list[int]:
    """Which of the analysed `steps` read every block (`depth_steps` setting); always
    includes the last analysed step, where the depth trends are judged."""
    if setting == "all" or (setting == "auto" and suite != "hub"):
        return list(steps)
    if setting == "auto" or isinstance(setting, int):
        return log_spaced(steps, 12 if setting == "auto" else setting)
    missing = [s for s in setting if s not in steps]
    if missing:
        raise CheckpointError(f"analysis.depth_steps: step(s) {missing} are not among the analysed steps {steps}")
    return sorted(set(setting) | {steps[-1]})


def describe(cfg: dict) -> list[dict]:
    """One row per run, in role order: role, checkpoints, last step, blocks and, for the tiny
    suite, whatever its manifest records for the run (documents, tokens, data, seed)."""
    runs = open_runs(cfg)
    manifest = {}
    if cfg["suite"] == "tiny":
        manifest = json.loads((_suite_folder(cfg) / "manifest.json").read_text()).get("runs", {})
    rows = []
    for name, run in runs.items():
        row = {"run": name, "role": run.role, "checkpoints": len(run.steps), "last step": run.steps[-1],
               "blocks": first_readable(run).n_layers}
        row.update({k: v for k, v in manifest.get(name, {}).items() if k not in row})
        rows.append(row)
    return rows

"""Runs and checkpoints: where weights come from, read one tensor at a time.

A Run is a named sequence of checkpoints indexed by training step; a Checkpoint reads
single tensors as NumPy arrays and knows its architecture. This module holds the local
folder source (Hugging Face layout: step{N}/config.json + model.safetensors).
"""

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from .. import architectures


class CheckpointError(ValueError):
    """A checkpoint folder or file that cannot be read as asked."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class Checkpoint:
    """One step of one run, from a folder with config.json and model.safetensors."""

    def __init__(self, folder: Path, step: int, run: str = ""):
        self.folder, self.step, self.run = Path(folder), step, run
        self.weights = self.folder / "model.safetensors"
        if not (self.folder / "config.json").is_file():
            raise CheckpointError(f"{self.folder}: no config.json (expected a Hugging Face checkpoint folder)")
        if not self.weights.is_file():
            raise CheckpointError(f"{self.folder}: no model.safetensors (expected the weights beside config.json)")

    def __repr__(self):
        return f"Checkpoint(run={self.run!r}, step={self.step}, folder='{self.folder}')"

    @cached_property
    def config(self) -> dict:
        return json.loads((self.folder / "config.json").read_text())

    @cached_property
    def architecture(self) -> architectures.Architecture:
        return architectures.for_config(self.config, str(self.folder / "config.json"))

    @property
    def n_layers(self) -> int:
        return self.config[self.architecture.n_layers_key]

    @property
    def n_heads(self) -> int:
        return self.config[self.architecture.n_heads_key]

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the weights file: what cached results are keyed by."""
        return _sha256(self.weights)

    def tensor_names(self) -> list[str]:
        with self._open() as f:
            return list(f.keys())

    def _open(self):
        try:
            return safe_open(self.weights, framework="numpy")
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{self.weights}: not a readable safetensors file ({e})") from e

    def tensor(self, name: str) -> np.ndarray:
        with self._open() as f:
            if name not in f.keys():
                raise CheckpointError(f"{self.weights}: no tensor named {name!r}")
            try:
                return f.get_tensor(name)
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"{self.weights}: tensor {name!r} cannot be read ({e})") from e

    def tensor_name(self, role: str, block: int) -> str:
        return architectures.tensor_name(self.architecture, role, block, self.n_layers)

    def matrix(self, role: str, block: int) -> np.ndarray:
        """w: (out, in) for a role of a block."""
        w = self.tensor(self.tensor_name(role, block))
        return w.T if self.architecture.transposed else w


class Run:
    """A training run on disk: `folder/step{N}/` for each saved step."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, Path(folder)
        if not self.folder.is_dir():
            raise CheckpointError(f"run {name!r}: folder {self.folder} does not exist")
        self._steps = {}
        for sub in self.folder.iterdir():
            m = re.fullmatch(r"step(\d+)", sub.name)
            if m and sub.is_dir():
                self._steps[int(m.group(1))] = sub
        if not self._steps:
            raise CheckpointError(f"run {name!r}: no step<N> folders in {self.folder}")

    def __repr__(self):
        return f"Run({self.name!r}, {len(self._steps)} steps, folder='{self.folder}')"

    @property
    def steps(self) -> list[int]:
        return sorted(self._steps)

    def checkpoint(self, step: int) -> Checkpoint:
        if step not in self._steps:
            raise CheckpointError(f"run {self.name!r} has no step {step}; it has {self.steps}")
        return Checkpoint(self._steps[step], step, self.name)

    def middle_block(self) -> int:
        """The study's block: n_layers // 2."""
        return self.checkpoint(self.steps[0]).n_layers // 2


def open_runs(cfg: dict) -> dict[str, Run]:
    """The runs named by the settings, from the tiny suite (trained on first use) or a folder."""
    if cfg["suite"] == "tiny":
        from .tiny import suite_folder

        folder = suite_folder(cfg["tiny"], Path(cfg["cache_dir"]))
    else:
        folder = Path(cfg["root"]) / cfg["folder"]
    return {name: Run(name, folder / name) for name in cfg["runs"]}


def select_steps(run: Run, steps) -> list[int]:
    """`steps` setting ("all" or a list) resolved against what the run has."""
    if steps == "all":
        return run.steps
    missing = [s for s in steps if s not in run.steps]
    if missing:
        raise CheckpointError(f"analysis.steps: run {run.name!r} has no step(s) {missing}; it has {run.steps}")
    return list(steps)


def describe(cfg: dict) -> list[dict]:
    """One row per run: checkpoints, last step, and (tiny suite) documents and tokens trained on."""
    runs = open_runs(cfg)
    manifest = {}
    if cfg["suite"] == "tiny":
        first = next(iter(runs.values()))
        manifest = json.loads((first.folder.parent / "manifest.json").read_text())["runs"]
    rows = []
    for name, run in runs.items():
        row = {"run": name, "checkpoints": len(run.steps), "last step": run.steps[-1],
               "blocks": run.checkpoint(run.steps[0]).n_layers}
        row.update(manifest.get(name, {}))
        rows.append(row)
    return rows

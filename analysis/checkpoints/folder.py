"""A training run on disk: `folder/step{N}/` for each saved step, in Hugging Face layout."""

import re
from pathlib import Path

from .. import architectures
from .checkpoint import Checkpoint, CheckpointError


class Run:
    """A named sequence of checkpoints indexed by training step. `role` is the run's role in
    the settings (reference, treatment, replica), set by suite.open_runs; None otherwise."""

    def __init__(self, name: str, folder: Path, role: str | None = None):
        self.name, self.folder, self.role = name, Path(folder), role
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
        return architectures.middle_block(self.checkpoint(self.steps[0]).n_layers)

"""Runs and checkpoints: where weights come from, read one tensor at a time.

checkpoint.py  Checkpoint: one step of a run; tensors and role matrices by byte range
formats.py     safetensors and PyTorch zip readers (headers, byte ranges)
folder.py      Run: a run on disk, `step{N}/` folders in Hugging Face layout
hub.py         HubRun: a run on the Hugging Face hub, steps from its branches
tensor_cache.py  tensors read from remote checkpoints, kept on disk
suite.py       open_runs (the settings' runs, in role order), select_steps, describe
tiny/          the tiny suite, trained here
"""

from . import formats
from .checkpoint import Checkpoint, CheckpointError
from .errors import TransientError, is_transient
from .folder import Run
from .suite import depth_steps, describe, first_readable, open_runs, select_steps

__all__ = ["Checkpoint", "CheckpointError", "Run", "TransientError", "depth_steps", "describe", "first_readable", "formats",
           "is_transient", "open_runs", "select_steps"]

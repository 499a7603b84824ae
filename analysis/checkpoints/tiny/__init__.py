"""The tiny suite: GPT-NeoX models trained here on real text: raw, deduplicated, and replicas (other seeds)."""

from pathlib import Path

from .layout import checkpoint_steps, suite_key

__all__ = ["checkpoint_steps", "suite_folder", "suite_key"]


def suite_folder(cfg: dict, cache_dir) -> Path:
    """The built suite for these settings, training it first if it is not there yet.

    Checking needs no torch: only a missing suite imports the training code."""
    folder = Path(cache_dir) / "tiny-suite" / suite_key(cfg)
    if (folder / "manifest.json").is_file():
        return folder
    from .train import build

    return build(cfg, cache_dir)

"""The tiny suite: GPT-NeoX models trained here on real text: raw, deduplicated, and replicas (other seeds)."""

import hashlib
import json
from pathlib import Path


def checkpoint_steps(total: int, every: int) -> list[int]:
    """Pythia's schedule: 0 and powers of two up to 512 (within `total`), then every `every` steps."""
    steps = [0] + [2**i for i in range(10) if 2**i <= total]
    start = max(steps)
    steps += list(range(every * (start // every + 1), total + 1, every))
    if steps[-1] != total:
        steps.append(total)
    return sorted(set(steps))


def suite_key(cfg: dict) -> str:
    """Digest of the `tiny` settings: one suite folder per distinct configuration."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]


def suite_folder(cfg: dict, cache_dir) -> Path:
    """The built suite for these settings, training it first if it is not there yet.

    Checking needs no torch: only a missing suite imports the training code."""
    folder = Path(cache_dir) / "tiny-suite" / suite_key(cfg)
    if (folder / "manifest.json").is_file():
        return folder
    from .train import build

    return build(cfg, cache_dir)

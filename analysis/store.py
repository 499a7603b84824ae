"""Results cache: arrays keyed by everything they depend on, written atomically.

A key is a plain dict (the checkpoint's content hash, the tensor, the measure, its
parameters and the version of the code that computes it); its sha256 names an .npz file.
Changing any part of the key computes afresh; nothing is ever overwritten in place.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from .files import atomic_path


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    def __init__(self, root):
        self.root = Path(root)
        self.hits = self.misses = 0

    def path(self, key: dict) -> Path:
        digest = key_digest(key)
        return self.root / "results" / str(key.get("kind", "misc")) / digest[:2] / f"{digest}.npz"

    def has(self, key: dict) -> bool:
        return self.path(key).is_file()

    def get(self, key: dict):
        path = self.path(key)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if k != "__key__"}
        return {k: (v.item() if v.ndim == 0 else v) for k, v in out.items()}

    def put(self, key: dict, arrays: dict) -> None:
        path = self.path(key)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, __key__=json.dumps(key, sort_keys=True, default=str), **arrays)

    def cached(self, key: dict, compute):
        """The stored value for `key`, or `compute()` stored under it."""
        value = self.get(key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        value = compute()
        self.put(key, value)
        return value

"""Tensors extracted from remote checkpoints, kept locally so a second run moves no bytes.

Keyed by an immutable id of the checkpoint (repo and revision commit), the file and the
tensor name; written atomically. Offline (HF_HUB_OFFLINE=1) the cache is all there is, and a
miss is an error that names what is missing.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..files import atomic_path
from .errors import TransientError


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


class TensorCache:
    def __init__(self, root):
        self.root = Path(root) / "tensors"

    def path(self, cache_id: str, name: str) -> Path:
        folder = hashlib.sha256(cache_id.encode()).hexdigest()[:24]
        leaf = hashlib.sha256(name.encode()).hexdigest()[:32]
        return self.root / folder / f"{leaf}.npy"

    def get_or_read(self, cache_id: str, name: str, read):
        """`cache_id` names immutable checkpoint content (repo@commit), so a tensor name is
        enough within it."""
        path = self.path(cache_id, name)
        if path.is_file():
            return np.load(path)
        if offline():
            raise TransientError(f"HF_HUB_OFFLINE is set and tensor {name!r} of {cache_id} is not in the "
                                  f"local cache ({path}); run once with network access to fetch it")
        value = read()
        self.put(cache_id, name, value)
        return value

    def put(self, cache_id: str, name: str, value: np.ndarray) -> None:
        with atomic_path(self.path(cache_id, name)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, value)

    def _meta_path(self, cache_id: str) -> Path:
        return self.root / hashlib.sha256(cache_id.encode()).hexdigest()[:24] / "meta.json"

    def meta(self, cache_id: str) -> dict:
        """Small facts about the checkpoint (file list, config, weight map, content hash),
        cached like its tensors so that a warm or offline run needs no network at all."""
        path = self._meta_path(cache_id)
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_meta(self, cache_id: str, meta: dict) -> None:
        with atomic_path(self._meta_path(cache_id)) as tmp:
            tmp.write_text(json.dumps(meta, sort_keys=True))

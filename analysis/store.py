"""Results cache: arrays keyed by everything they depend on, written atomically.

A key is a plain dict (the checkpoint's content hash, the tensor, the measure, its
parameters and the version of the code that computes it); its sha256 names an .npz file.
Changing any part of the key computes afresh; nothing is ever overwritten in place.

The root is a local path or an fsspec URL (memory://, s3://...), so that workers on other
machines share one cache. A record is encoded in memory and then written in one step: on a
local disk to a temporary name renamed over the final one (two writers of one record each
rename a whole file), elsewhere in one put, which object stores and memory:// make visible
whole or not at all.
"""

import hashlib
import io
import json

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from .files import atomic_path


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    def __init__(self, root):
        self.url = str(root)  # as given: what another process opens the same store by
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.hits = self.misses = 0

    @classmethod
    def of(cls, cfg: dict) -> "Store":
        """The settings' results cache: `results_cache`, else `cache_dir`."""
        return cls(cfg.get("results_cache") or cfg["cache_dir"])

    def path(self, key: dict) -> str:
        digest = key_digest(key)
        return f"{self.root.rstrip('/')}/results/{key.get('kind', 'misc')}/{digest[:2]}/{digest}.npz"

    def has(self, key: dict) -> bool:
        return self.fs.isfile(self.path(key))

    def get(self, key: dict):
        try:
            data = self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if k != "__key__"}
        return {k: (v.item() if v.ndim == 0 else v) for k, v in out.items()}

    def put(self, key: dict, arrays: dict) -> None:
        buf = io.BytesIO()
        np.savez(buf, __key__=json.dumps(key, sort_keys=True, default=str), **arrays)
        path = self.path(key)
        if isinstance(self.fs, LocalFileSystem):
            with atomic_path(path) as tmp:
                tmp.write_bytes(buf.getvalue())
        else:
            self.fs.pipe_file(path, buf.getvalue())

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

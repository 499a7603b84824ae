"""Checkpoint: one step of one run, read one tensor at a time.

A folder (local, or on any fsspec file system such as huggingface_hub's HfFileSystem) with
config.json and weights in safetensors or PyTorch zip format, single or sharded; tensors
are read by byte range (formats.py) and matrices by role (architectures.py).
"""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

from .. import architectures
from . import formats
from .errors import CheckpointError, TransientError, is_transient  # noqa: F401  (re-exported: raised here)
from .retry import retrying
from .tensor_cache import offline


# Concurrent range requests per checkpoint file (each a hub redirect plus a CDN answer); the
# most tensor bytes read in one batch, which bounds what a read holds in memory (a batch's
# buffer and its ranges in flight; measured at 128 MiB batches: +390 MiB peak RSS to prefetch
# every block of a pythia-410m checkpoint, +1020 MiB unbatched); and the most bytes one request
# asks for (a larger coalesced range is split into chunks fetched concurrently). Chunks are as
# large as a batch: every chunk costs a resolve against the hub's 5-minute quota, and on the
# benchmark's fake hub smaller parallel chunks were slower (benchmarks/results/
# hub-requests-2core.log); 256 MiB batches keep every block of a pythia-1b checkpoint within
# 60 requests in each format (30 safetensors, 48 .bin, 49 sharded).
FETCH_WORKERS = 8
BATCH_BYTES = 1 << 28
CHUNK_BYTES = BATCH_BYTES

# What the cached facts of a checkpoint (file list, config, indexes: `_memo`) look like; bump it
# when their form changes, and caches of the old form are read again instead of misread.
META_VERSION = 1

# Preferred first: safetensors over pickles, a single file over shards.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


_HASHES = {}  # (path, size, mtime) -> sha256: the audit and every spectra call ask again


def _sha256_file(fs, path: str) -> str:
    info = fs.info(path)
    stamp = (path, info.get("size"), info.get("mtime"))
    if stamp not in _HASHES:
        h = hashlib.sha256()
        with fs.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASHES[stamp] = h.hexdigest()
    return _HASHES[stamp]


def defect(t: np.ndarray) -> str:
    """Why `t` cannot be a weight matrix ("" if it can): not floating point (a mask or ids
    relabelled as weights), non-finite values, empty, or (a matrix) of rank 0 or 1 (all zero,
    constant, one entry, an outer product), whose spectrum has fewer than two nonzero values:
    no tail to fit, and baselines that say nothing."""
    if t.dtype.kind != "f":
        return f"of dtype {t.dtype}, not floating point"
    bad = int(t.size - np.count_nonzero(np.isfinite(t)))
    if bad:
        return f"holding {bad} non-finite values"
    if t.size == 0:
        return f"empty (shape {tuple(t.shape)})"
    if not np.any(t != t.flat[0]):
        return "all zero" if t.flat[0] == 0 else f"constant (every value {float(t.flat[0]):g})"
    if t.ndim == 2 and rank_at_most_one(t):
        return f"of rank 1 (every row a multiple of one row; shape {tuple(t.shape)})"
    return ""


def rank_at_most_one(w: np.ndarray, chunk: int = 1 << 22) -> bool:
    """Whether w: (m, n) is of rank <= 1 to the precision of its dtype: its rows less their
    projection on the largest row leave, in Frobenius norm, at most 2 eps ||w||_F, which the
    rounding of a rank-1 matrix to w's dtype stays within (and any rank-1 projection leaves
    at least sqrt(sigma_2^2 + ...)). O(m n), in float64 row chunks of about `chunk` entries:
    cheap enough for the audit, whatever the matrix's size."""
    rows = max(1, chunk // max(1, w.shape[1]))
    chunks = [slice(i, i + rows) for i in range(0, len(w), rows)]
    norms = np.concatenate([np.einsum("ij,ij->i", w[c], w[c], dtype=np.float64) for c in chunks])
    r = np.asarray(w[int(np.argmax(norms))], dtype=np.float64)
    r = r / np.linalg.norm(r)
    rest = 0.0
    for c in chunks:
        p = np.asarray(w[c], dtype=np.float64)
        rest += float(np.sum((p - np.outer(p @ r, r)) ** 2))
    eps = np.finfo(w.dtype if w.dtype.kind == "f" else np.float64).eps
    return bool(np.sqrt(rest) <= 2 * eps * np.sqrt(norms.sum()))


def _os_error(e: OSError, what: str) -> CheckpointError:
    """An OSError met reading `what`, as the error that says whether a retry can help."""
    if is_transient(e):
        return TransientError(f"{what}: temporary failure ({type(e).__name__}: {e}); retry when it can be reached")
    return CheckpointError(f"{what}: {type(e).__name__}: {e}")


class Checkpoint:
    """One step of one run: a folder (local, or on any fsspec file system such as
    huggingface_hub's HfFileSystem) with config.json and weights in safetensors or PyTorch
    zip format, single or sharded. Reads single tensors by byte range.

    `tensor_cache`: an optional TensorCache; `cache_id` names this checkpoint's immutable
    content there (e.g. "repo@commit"), so a second read moves no bytes."""

    def __init__(self, folder, step: int, run: str = "", fs=None, tensor_cache=None, cache_id: str | None = None):
        self.fs = fs or fsspec.filesystem("file")
        self.folder, self.step, self.run = str(folder).rstrip("/"), step, run
        self.tensor_cache, self.cache_id = tensor_cache, cache_id
        self._remote = not isinstance(self.fs, LocalFileSystem)
        self._meta = tensor_cache.meta(cache_id) if self._memoised else {}
        if self._meta.get("version", 1) != META_VERSION:  # written by a reader that kept other facts
            self._meta = {}
        self._meta["version"] = META_VERSION
        present = set(self._memo("files", self._list))
        if "config.json" not in present:
            raise CheckpointError(f"{self.folder}: no config.json (expected a Hugging Face checkpoint folder)")
        found = [f for f in WEIGHT_FILES if f in present]
        if not found:
            raise CheckpointError(f"{self.folder}: no weights (expected one of {', '.join(WEIGHT_FILES)})")
        self.weights_file = found[0]
        self._indexes, self._resolved = {}, set()

    def __repr__(self):
        return f"Checkpoint(run={self.run!r}, step={self.step}, folder='{self.folder}', weights='{self.weights_file}')"

    @property
    def _memoised(self) -> bool:
        return self.tensor_cache is not None and bool(self.cache_id)

    def _memo(self, key: str, compute):
        """Facts about immutable content (cache_id), kept in the tensor cache's meta file."""
        if key not in self._meta:
            if self._memoised and offline():
                raise TransientError(f"HF_HUB_OFFLINE is set and {self.cache_id} has no cached {key!r}; "
                                      "run once with network access")
            self._meta[key] = retrying(compute, f"{self.folder}: reading its {key.split(':')[0]}") if self._remote else compute()
            if self._memoised:
                self.tensor_cache.save_meta(self.cache_id, self._meta)
        return self._meta[key]

    def _list(self) -> list[str]:
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.folder, detail=False))
        except FileNotFoundError:
            raise CheckpointError(f"{self.folder}: checkpoint folder does not exist") from None
        except OSError as e:
            raise _os_error(e, f"{self.folder}: listing the checkpoint folder") from e

    def _path(self, name: str) -> str:
        return f"{self.folder}/{name}"

    def _open(self, name: str):
        # Remote: no read-ahead cache, so every read is exactly one Range request.
        return self.fs.open(self._path(name), "rb", **({"cache_type": "none"} if self._remote else {}))

    @cached_property
    def config(self) -> dict:
        def read():
            with self.fs.open(self._path("config.json"), "rb") as f:
                try:
                    config = json.loads(f.read())
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise CheckpointError(f"{self._path('config.json')}: not valid JSON ({e})") from e
            if not isinstance(config, dict):
                raise CheckpointError(f"{self._path('config.json')}: expected a JSON object, got {type(config).__name__}")
            return config

        try:
            return self._memo("config", read)
        except OSError as e:
            raise _os_error(e, f"{self._path('config.json')}") from e

    @cached_property
    def architecture(self) -> architectures.Architecture:
        config = self.config
        try:
            return architectures.for_config(config, self._path("config.json"))
        except ValueError as e:
            raise CheckpointError(str(e)) from e

    def _count(self, key: str) -> int:
        value = self.config.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise CheckpointError(f"{self._path('config.json')}: {key} is {value!r}; expected a positive integer")
        return value

    @property
    def n_layers(self) -> int:
        return self._count(self.architecture.n_layers_key)

    @property
    def n_heads(self) -> int:
        return self._count(self.architecture.n_heads_key)

    @cached_property
    def weight_map(self) -> dict[str, str]:
        """tensor name -> file holding it (one file, or the shards of an index)."""
        return self._memo("weight_map", self._weight_map)

    def _weight_map(self) -> dict[str, str]:
        if not self.weights_file.endswith(".index.json"):
            return {name: self.weights_file for name in self._index(self.weights_file)}
        with self.fs.open(self._path(self.weights_file), "rb") as f:
            try:
                mapping = json.loads(f.read())["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f"{self._path(self.weights_file)}: not a shard index ({e})") from e
        return dict(mapping)

    @cached_property
    def weight_files(self) -> list[str]:
        if not self.weights_file.endswith(".index.json"):
            return [self.weights_file]  # no need to read its header
        return sorted(set(self.weight_map.values()))

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the weights (for shards: of their hashes in order): what cached results
        are keyed by. Remote LFS files report it without a download."""
        try:
            return self._memo("content_hash", self._content_hash)
        except OSError as e:
            raise _os_error(e, f"{self.folder}: hashing the weights") from e

    def file_hashes(self) -> dict[str, str]:
        """{weights file: sha256}: LFS metadata for remote files, hashed locally otherwise."""
        return self._memo("file_hashes", lambda: {name: self._file_hash(name) for name in self.weight_files})

    def _file_hash(self, name: str) -> str:
        info = self.fs.info(self._path(name)) if self._remote else {}
        return (info.get("lfs") or {}).get("sha256") or _sha256_file(self.fs, self._path(name))

    def _content_hash(self) -> str:
        hashes = [self.file_hashes()[name] for name in self.weight_files]
        if len(hashes) == 1:
            return hashes[0]
        return hashlib.sha256("".join(hashes).encode()).hexdigest()

    def _fetcher(self, name: str, size: int):
        """fetch(ranges) -> [bytes-like] for one file of `size` bytes. Remote: each range split
        into chunks of at most CHUNK_BYTES, FETCH_WORKERS at a time, each one Range request on
        a file opened without read-ahead, and each answer checked to be exactly the bytes asked
        for (a server that ignores Range answers with the whole file: wrong bytes, silently)."""
        path = self._path(name)

        def one(a, b):
            def get():
                with self._open(name) as f:
                    f.seek(a)
                    return f.read(b - a)

            data = retrying(get, f"{path}: bytes {a}-{b}") if self._remote else get()
            if len(data) > b - a or (len(data) < b - a and b < size):  # short only at the end of the file
                raise TransientError(f"{path}: asked for bytes [{a}, {b}) ({b - a} bytes), got {len(data)}; the server "
                                     "(or a proxy) does not answer Range requests as asked, so nothing was read or cached")
            formats.count_read(len(data))
            return data

        def fetch(ranges):
            if not self._remote:
                return [one(a, b) for a, b in ranges]
            chunks = [(k, lo, min(lo + CHUNK_BYTES, b)) for k, (a, b) in enumerate(ranges) for lo in range(a, b, CHUNK_BYTES)]
            if len(chunks) == 1:
                return [one(*chunks[0][1:])]
            if name not in self._resolved:  # once, before the threads: each open then finds the
                retrying(lambda: self.fs.info(path), f"{path}: file info")  # listing cached, not 8 at once
                self._resolved.add(name)
            out = [bytearray(b - a) for a, b in ranges]  # filled in place: no chunk is held twice
            short = [0] * len(ranges)  # bytes missing at the end of the file (only a range's last chunk)

            def put(chunk):
                k, lo, hi = chunk
                data = one(lo, hi)
                start = lo - ranges[k][0]
                out[k][start:start + len(data)] = data
                if len(data) < hi - lo:
                    short[k] = hi - lo - len(data)

            with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(chunks)), thread_name_prefix=f"fetch {path}") as pool:
                list(pool.map(put, chunks))
            for buf, n in zip(out, short):
                del buf[len(buf) - n:]  # short at the end of the file: the format reader names it
            return out

        return fetch

    def _size(self, name: str) -> int:
        path = self._path(name)
        try:
            return self.fs.size(path)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: shard named by {self.weights_file} does not exist") from None

    def _index(self, name: str) -> dict:
        """{tensor: TensorInfo} of one weights file, kept with the checkpoint's metadata (so
        read once per repo and commit) together with the file's size."""
        if name not in self._indexes:
            def read():
                size = self._size(name)
                try:
                    infos = formats.index(self._fetcher(name, size), size, name, self._path(name))
                except formats.FormatError as e:
                    raise CheckpointError(str(e)) from e
                return {"size": size, "tensors": [i.to_json() for i in infos.values()]}

            got = self._memo(f"index:{name}", read)
            self._indexes[name] = ({row[0]: formats.TensorInfo.from_json(row) for row in got["tensors"]}, got["size"])
        return self._indexes[name][0]

    def tensor_names(self) -> list[str]:
        return sorted(self.weight_map)

    def tensor_meta(self, names) -> dict[str, dict]:
        """{name: {shape, dtype, nbytes, cached}} from the weights files' indexes alone (no
        tensor data is read): shape and dtype as stored, the bytes a read moves, and whether
        the tensor cache already holds it (then a read moves nothing)."""
        out = {}
        for name in dict.fromkeys(names):
            if name not in self.weight_map:
                raise CheckpointError(f"{self.folder}: no tensor {name!r} in {self.weights_file}")
            info = self._index(self.weight_map[name])[name]
            cached = self._memoised and self.tensor_cache.path(self.cache_id, name).is_file()
            out[name] = {"shape": tuple(info.shape), "dtype": info.dtype, "nbytes": info.end - info.start, "cached": cached}
        return out

    def tensor(self, name: str) -> np.ndarray:
        return self.tensors([name])[name]

    def tensors(self, names) -> dict[str, np.ndarray]:
        """{name: array}: cached ones from the tensor cache, the others read together, file by
        file, in coalesced concurrent ranges (and then cached)."""
        names = list(dict.fromkeys(names))
        try:
            return self._tensors(names)
        except OSError as e:
            raise _os_error(e, f"{self.folder}: reading tensor{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}") from e

    def _tensors(self, names: list[str], keep: bool = True) -> dict[str, np.ndarray]:
        """`keep=False` (prefetch): into the tensor cache only, batch by batch, holding no
        result, and without loading what is cached already."""
        out, missing = {}, []
        for name in names:
            path = self.tensor_cache.path(self.cache_id, name) if self._memoised else None
            if path is not None and path.is_file():
                if keep:
                    out[name] = np.load(path)
            else:
                missing.append(name)
        if missing and self._memoised and offline():
            raise TransientError(f"HF_HUB_OFFLINE is set and tensor {missing[0]!r} of {self.cache_id} is not in the "
                                  f"local cache ({self.tensor_cache.path(self.cache_id, missing[0])}); run once with "
                                  "network access to fetch it")
        for name in missing:
            if name not in self.weight_map:
                raise CheckpointError(f"{self._path(self.weights_file)}: no tensor named {name!r}")
        by_file = {}
        for name in missing:
            by_file.setdefault(self.weight_map[name], []).append(name)
        for file, group in by_file.items():
            index = self._index(file)
            lost = [n for n in group if n not in index]
            if lost:
                raise CheckpointError(f"{self._path(file)}: no tensor named {lost[0]!r} (the shard index says it is there)")
            infos = sorted((index[n] for n in group), key=lambda i: (i.header or 0, i.start))
            size = self._indexes[file][1]
            for batch in _batches(infos, BATCH_BYTES):
                try:
                    read = formats.read_tensors(self._fetcher(file, size), batch, size, self._path(file))
                except formats.FormatError as e:
                    raise CheckpointError(str(e)) from e
                if self._memoised:
                    for n in read:
                        self.tensor_cache.put(self.cache_id, n, read[n])
                if keep:
                    out.update(read)
                del read  # the batch's buffer is freed here unless kept (no loop variable holds on to it)
        return out

    def tensor_name(self, role: str, block: int) -> str:
        return architectures.tensor_name(self.architecture, role, block, self.n_layers)

    def prefetch(self, pairs) -> None:
        """Read the matrices of [(role, block)] together (coalesced, concurrent) into the
        tensor cache, so that `matrix` then finds them there."""
        if self._memoised:
            names = list(dict.fromkeys(n for r, b in pairs for n in architectures.tensor_names(self.architecture, r, b, self.n_layers)))
            try:
                self._tensors(names, keep=False)
            except OSError as e:
                raise _os_error(e, f"{self.folder}: reading {len(names)} tensors") from e

    def matrix(self, role: str, block: int) -> np.ndarray:
        """w: (out, in) for a role of a block (several tensors stacked as rows, e.g. Llama's
        q, k and v projections)."""
        names = architectures.tensor_names(self.architecture, role, block, self.n_layers)
        got = self.tensors(names)
        parts = [got[n] for n in names]
        where = f"run {self.run!r} step {self.step} block {block} {role}"
        for name, part in zip(names, parts):
            why = f"of shape {tuple(part.shape)}, not a matrix" if part.ndim != 2 else defect(part)
            if why:  # refused here, so no spectrum, measure or cache record is ever made from it
                raise CheckpointError(f"{where}: tensor {name!r} in {self._path(self.weight_map[name])} is {why}; "
                                      "a weight matrix has finite floating-point values and rank >= 2 (the tail fit "
                                      "needs at least 2 nonzero singular values)")
        if self.architecture.transposed:
            parts = [p.T for p in parts]
        # The side that meets the residual stream has the model's width, where config.json says it.
        width = next((self.config[k] for k in ("hidden_size", "n_embd") if isinstance(self.config.get(k), int)), None)
        side = 1 if role in ("qkv", "mlp_in") else 0  # w: (out, in)
        for name, part in zip(names, parts):
            if width is not None and part.shape[side] != width:
                raise CheckpointError(f"{where}: tensor {name!r} in {self._path(self.weight_map[name])} reads as "
                                      f"(out, in) = {tuple(part.shape)}; config.json's width {width} expects "
                                      f"{'in' if side else 'out'} = {width}")
        if len(parts) > 1 and len({p.shape[1] for p in parts}) > 1:
            raise CheckpointError(f"{where}: tensors {', '.join(names)} have shapes {[tuple(p.shape) for p in parts]}; "
                                  "stacked as rows they need one input width")
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _batches(infos, limit: int):
    """Consecutive runs of `infos` of at most `limit` tensor bytes (a larger tensor alone)."""
    batch, held = [], 0
    for info in infos:
        if batch and held + info.end - info.start > limit:
            yield batch
            batch, held = [], 0
        batch.append(info)
        held += info.end - info.start
    if batch:
        yield batch

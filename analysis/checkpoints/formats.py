"""Read single tensors out of checkpoint files by byte range: safetensors and PyTorch's zip
`.bin`, from any seekable binary file object (a local file, or a remote file opened through
fsspec, e.g. huggingface_hub's HfFileSystem, whose reads are HTTP Range requests).

Only the index (safetensors' JSON header, or the zip directory plus `data.pkl`) and the
requested tensors' bytes are read, in few requests: a file is read through a `fetch(ranges)
-> [bytes]` function (the caller's; remote ones run ranges concurrently), the index in one or
two speculative reads (`SparseFile`), and the tensors asked for together in coalesced ranges
(`read_tensors`); a zip member's local header comes with its data, so it costs no request. `.bin` pickles go through a restricted unpickler that
imports nothing outside an allow-list and executes nothing: it only records where each
tensor's bytes are.
"""

import bisect
import io
import json
import math
import pickle
import struct
import threading
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError


class FormatError(AnalysisError, ValueError):
    """A checkpoint file whose structure is not what its format promises."""


SAFETENSORS_DTYPES = {"F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
                      "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
                      "U8": np.dtype("u1"), "BOOL": np.dtype("?")}
TORCH_STORAGES = {"FloatStorage": ("F32", 4), "HalfStorage": ("F16", 2), "BFloat16Storage": ("BF16", 2),
                  "DoubleStorage": ("F64", 8), "LongStorage": ("I64", 8), "IntStorage": ("I32", 4),
                  "ShortStorage": ("I16", 2), "CharStorage": ("I8", 1), "ByteStorage": ("U8", 1),
                  "BoolStorage": ("BOOL", 1)}


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes are: [start, end) in the file, its dtype and shape. In a zip,
    `header` is its member's local header offset and [start, end) count from the member's
    data, which begins after that header (its length is known only once it is read)."""

    name: str
    dtype: str  # safetensors dtype name
    shape: tuple
    start: int
    end: int
    header: int | None = None

    def to_json(self) -> list:
        return [self.name, self.dtype, list(self.shape), self.start, self.end, self.header]

    @classmethod
    def from_json(cls, row: list) -> "TensorInfo":
        name, dtype, shape, start, end, header = row
        return cls(name, dtype, tuple(shape), start, end, header)


# Speculative first reads (at most these, and 1/64 of a small file): a safetensors header
# (pythia-1b's is ~30 kB), a zip's tail with its central directory. A miss costs one more read.
HEAD_GUESS = 1 << 17
TAIL_GUESS = 1 << 17
# A zip local header is 30 bytes, the member name and an extra field that torch uses to align
# data to 64 bytes (up to 67 bytes, plus 20 for zip64): read this much past the name with it.
LOCAL_EXTRA_GUESS = 128
LOCAL_NAME_GUESS = 256  # torch's member names are short ("archive/data/123"); a longer one costs a read
ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"
# Tensors closer than this in the file are read as one range: a gap costs less than a request.
MAX_GAP = 1 << 18


_BYTES_READ = [0]  # process-wide count, for progress bars (fetch threads add to it)
_BYTES_LOCK = threading.Lock()


def bytes_read() -> int:
    """Checkpoint bytes read by this process so far (headers, indexes and tensors)."""
    return _BYTES_READ[0]


def count_read(n: int) -> None:
    """Fetch functions report the bytes they moved here."""
    with _BYTES_LOCK:
        _BYTES_READ[0] += n


class SparseFile(io.RawIOBase):
    """A read-only file of `size` bytes whose contents come from `fetch(ranges) -> [bytes]`
    and are kept once fetched, so that parsers (zipfile, the safetensors header) read it as a
    file while what moves is a few large ranges: `prefetch` what they will read, and a read
    outside it fetches at least `min_read` bytes from there."""

    def __init__(self, fetch, size: int, min_read: int = 1 << 16):
        super().__init__()
        self.fetch, self.size, self.min_read = fetch, size, min_read
        self.parts, self.pos, self.fetches = [], 0, 0  # parts: [(start, bytes)]

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def prefetch(self, ranges) -> None:
        ranges = [(max(0, a), min(self.size, b)) for a, b in ranges]
        ranges = [(a, b) for a, b in ranges if a < b and self._part(a, b) is None]
        if ranges:
            self.fetches += 1
            self.parts += [(a, d) for (a, _), d in zip(ranges, self.fetch(ranges))]

    def _part(self, a, b):
        for start, data in self.parts:
            if start <= a and b <= start + len(data):
                return start, data
        return None

    def read(self, n=-1):
        a = min(self.pos, self.size)
        b = self.size if n is None or n < 0 else min(self.size, a + n)
        if a >= b:
            return b""
        if self._part(a, b) is None:
            self.prefetch([(a, max(b, a + self.min_read))])
        found = self._part(a, b)
        if found is None:  # the fetch came back short: the file is shorter than it says
            return b""
        start, data = found
        self.pos = b
        return bytes(data[a - start:b - start])

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def read_exact(f, start: int, length: int, where: str) -> bytes:
    f.seek(start)
    data = f.read(length)
    if len(data) != length:
        raise FormatError(f"{where}: file ends at byte {start + len(data)}, expected {length} bytes from {start} (truncated?)")
    return data


def decode(data: bytes, dtype: str, shape: tuple) -> np.ndarray:
    """Bytes -> array. BF16 has no NumPy type: its 16 bits are the top half of a float32."""
    raw = np.frombuffer(data, dtype=SAFETENSORS_DTYPES[dtype])
    if dtype == "BF16":
        raw = (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.reshape(shape)


def _nbytes(dtype: str, shape) -> int:
    # Python ints: a product of header-given dimensions must not wrap around as int64 would.
    return math.prod(int(d) for d in shape) * SAFETENSORS_DTYPES[dtype].itemsize


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # JSON's true is an int to isinstance


def _entry(name, meta, where: str) -> tuple[str, tuple, int, int]:
    """One header entry's (dtype, shape, begin, end), each checked for its type and sign."""
    what = f"{where}: tensor {name!r}"
    if not isinstance(meta, dict) or not {"dtype", "shape", "data_offsets"} <= set(meta):
        raise FormatError(f"{what} has a malformed entry {meta!r}; expected {{dtype, shape, data_offsets}}")
    dtype, shape, offsets = meta["dtype"], meta["shape"], meta["data_offsets"]
    if not isinstance(dtype, str):
        raise FormatError(f"{what}: dtype {dtype!r} is not a string; expected one of {sorted(SAFETENSORS_DTYPES)}")
    if dtype not in SAFETENSORS_DTYPES:
        raise FormatError(f"{what} has unknown dtype {dtype!r}; known: {sorted(SAFETENSORS_DTYPES)}")
    if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
        raise FormatError(f"{what}: shape {shape!r} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise FormatError(f"{what}: data_offsets {offsets!r} is not a list of two integers")
    return dtype, tuple(shape), offsets[0], offsets[1]


# --- safetensors ---------------------------------------------------------------------------

def safetensors_index(f, size: int, where: str) -> dict[str, TensorInfo]:
    """Parse and check the header: 8-byte little-endian length, then JSON {name: {dtype,
    shape, data_offsets}} with offsets relative to the end of the header."""
    if size < 8:
        raise FormatError(f"{where}: {size} bytes is too short for a safetensors file (truncated?)")
    (n,) = struct.unpack("<Q", read_exact(f, 0, 8, where))
    if n > size - 8:
        raise FormatError(f"{where}: header length {n} runs beyond the file's {size} bytes")
    try:
        header = json.loads(read_exact(f, 8, n, where))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{where}: header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise FormatError(f"{where}: header is not a JSON object")
    base, infos = 8 + n, {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, b, e = _entry(name, meta, where)
        if not (0 <= b <= e) or base + e > size:
            raise FormatError(f"{where}: tensor {name!r} offsets [{b}, {e}) lie outside the file's data section "
                              f"({size - base} bytes)")
        if e - b != _nbytes(dtype, shape):
            raise FormatError(f"{where}: tensor {name!r} of shape {list(shape)} and dtype {dtype} needs "
                              f"{_nbytes(dtype, shape)} bytes, its offsets span {e - b}")
        infos[name] = TensorInfo(name, dtype, shape, base + b, base + e)
    spans = sorted(infos.values(), key=lambda t: (t.start, t.end))
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end:
            raise FormatError(f"{where}: tensors {a.name!r} and {b.name!r} overlap")
    return infos


# --- PyTorch zip (.bin) ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    ok = (isinstance(storage, _Storage) and _is_int(storage_offset) and storage_offset >= 0
          and all(isinstance(x, (tuple, list)) and all(_is_int(d) and d >= 0 for d in x) for x in (size, stride)))
    if not ok:
        raise pickle.UnpicklingError(f"a tensor's storage, offset {storage_offset!r}, size {size!r} or stride {stride!r} "
                                     "is not what torch saves (a storage and non-negative integers)")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


class _StorageType:
    def __init__(self, name):
        self.name = name


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict's data.pkl into _TensorRefs, and nothing else: any
    global outside the allow-list is refused before it is imported."""

    ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): OrderedDict,
        **{("torch", name): _StorageType(name) for name in TORCH_STORAGES},
    }

    def __init__(self, data: bytes, where: str):
        super().__init__(io.BytesIO(data))
        self.where = where

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self.where}: refusing to load {module}.{name} (not a tensor, storage or OrderedDict); "
                "nothing was imported or executed") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"{self.where}: unexpected persistent id {pid!r}")
        if not _is_int(pid[4]) or pid[4] < 0:
            raise pickle.UnpicklingError(f"{self.where}: storage {pid[2]!r} has size {pid[4]!r}, not a non-negative integer")
        dtype, _ = TORCH_STORAGES[pid[1].name]
        return _Storage(dtype, str(pid[2]), pid[4])


def _pickle_problem(e: Exception, where: str) -> str:
    """One line for a data.pkl that does not unpickle: a truncated stream (EOFError), an
    allowed name misused (TypeError: a storage class called), anything else torch never writes."""
    msg = str(e) if isinstance(e, pickle.UnpicklingError) else f"{type(e).__name__}: {e}"
    return msg if msg.startswith(where) else f"{where}: data.pkl is not a torch state dict ({msg})"


def _contiguous_stride(shape) -> tuple:
    stride, acc = [], 1
    for dim in reversed(shape):
        stride.append(acc)
        acc *= dim
    return tuple(reversed(stride))


def torch_zip_index(f, where: str) -> dict[str, TensorInfo]:
    """Find data.pkl and data/<key> members through the zip directory (read by seeking), parse
    data.pkl with the restricted unpickler, and map each tensor to its byte range."""
    try:
        zf = zipfile.ZipFile(f)
    except zipfile.BadZipFile as e:
        raise FormatError(f"{where}: not a zip archive, so not a PyTorch checkpoint saved by torch>=1.6 ({e})") from e
    names = zf.namelist()
    pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if not pkl:
        raise FormatError(f"{where}: zip archive has no data.pkl (not a PyTorch checkpoint)")
    prefix = pkl[0][: -len("data.pkl")]
    if isinstance(f, SparseFile):  # data.pkl with its local header, in one read if not yet there
        p = zf.getinfo(pkl[0])
        f.prefetch([(p.header_offset, p.header_offset + 30 + len(p.orig_filename.encode()) + LOCAL_EXTRA_GUESS
                     + p.compress_size)])
    try:  # a zip's own checks (CRC, header magic, compression) fail in zipfile's or zlib's types
        raw = zf.read(pkl[0])
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        raise FormatError(f"{where}: member {pkl[0]!r} cannot be read from the archive ({type(e).__name__}: {e}); "
                          "expected a stored (uncompressed) member whose bytes match its CRC") from e
    try:
        state = RestrictedUnpickler(raw, where).load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError) as e:
        raise FormatError(_pickle_problem(e, where)) from e
    if not isinstance(state, dict):
        raise FormatError(f"{where}: data.pkl holds a {type(state).__name__}, not a state dict")
    infos = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            continue
        member = f"{prefix}data/{ref.storage.key}"
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise FormatError(f"{where}: tensor {name!r} needs member {member!r}, which the archive lacks") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise FormatError(f"{where}: member {member!r} is compressed; only stored members can be read by range")
        if ref.stride != _contiguous_stride(ref.shape):
            raise FormatError(f"{where}: tensor {name!r} is not contiguous (stride {ref.stride}); re-save it contiguous")
        # The local header's length is read with the tensor (read_tensors), not here: one
        # request per tensor would make the index cost grow with the tensor count.
        itemsize = SAFETENSORS_DTYPES[ref.storage.dtype].itemsize
        start = ref.offset * itemsize
        end = start + _nbytes(ref.storage.dtype, ref.shape)
        if end > info.file_size:
            raise FormatError(f"{where}: tensor {name!r} runs past the end of its storage {member!r}")
        infos[name] = TensorInfo(name, ref.storage.dtype, ref.shape, start, end, header=info.header_offset)
    return infos


def index(fetch, size: int, filename: str, where: str) -> dict[str, TensorInfo]:
    """The tensor index of a safetensors (.safetensors) or PyTorch zip (.bin, .pt) file of
    `size` bytes, read through `fetch`: safetensors in at most 2 reads, a zip in at most 3
    (its tail, the rest of the central directory if the tail missed some, data.pkl)."""
    f = SparseFile(fetch, size)
    guess = max(1024, min(HEAD_GUESS, size // 64))  # small files: no need to read most of them
    if filename.endswith(".safetensors"):
        f.prefetch([(0, guess)])
        return safetensors_index(f, size, where)
    if filename.endswith((".bin", ".pt", ".pth")):
        f.prefetch([(size - min(TAIL_GUESS, guess), size)])
        return torch_zip_index(f, where)
    raise FormatError(f"{where}: unknown checkpoint format (expected .safetensors or .bin)")


def _span(info: TensorInfo) -> tuple[int, int]:
    """Bytes to read for a tensor: its own, or in a zip from its member's local header on,
    with room for the header's name and extra field."""
    if info.header is None:
        return info.start, info.end
    return info.header, info.header + 30 + LOCAL_NAME_GUESS + LOCAL_EXTRA_GUESS + info.end


def coalesce(spans, max_gap: int = MAX_GAP) -> list[tuple[int, int]]:
    """Sorted [start, end) ranges merged where they overlap or lie within `max_gap` bytes."""
    out = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + max_gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def read_tensors(fetch, infos: list[TensorInfo], size: int, where: str, max_gap: int = MAX_GAP) -> dict[str, np.ndarray]:
    """{name: array} for tensors of one file of `size` bytes: their byte ranges coalesced
    (neighbours within `max_gap` become one range) and fetched in one call, which may run
    them concurrently. A zip member's local header is parsed out of the same range."""
    spans = {i.name: (lo, min(hi, size)) for i in infos for lo, hi in [_span(i)]}
    ranges = coalesce(spans.values(), max_gap)
    data = fetch(ranges)
    starts = [a for a, _ in ranges]
    out = {}
    for info in infos:
        lo, _ = spans[info.name]
        k = bisect.bisect_right(starts, lo) - 1
        base, buf = ranges[k][0], memoryview(data[k])  # slices of it copy nothing
        start, end = info.start, info.end
        if info.header is not None:
            local = bytes(buf[lo - base:lo - base + 30])
            if len(local) < 30 or local[:4] != ZIP_LOCAL_SIGNATURE:
                raise FormatError(f"{where}: no zip local header at byte {info.header} for tensor {info.name!r}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            data_start = info.header + 30 + name_len + extra_len
            start, end = data_start + start, data_start + end
        raw = buf[start - base:end - base]
        if len(raw) < end - start and base + len(buf) >= min(size, spans[info.name][1]):
            # a header longer than guessed: fetch the rest of this tensor
            got = max(0, base + len(buf) - start)
            raw = bytes(raw) + bytes(fetch([(start + got, end)])[0])
        if len(raw) != end - start:
            raise FormatError(f"{where}: file ends at byte {start + len(raw)}, expected {end - start} bytes from "
                              f"{start} for tensor {info.name!r} (truncated?)")
        out[info.name] = decode(raw, info.dtype, info.shape)
    return out

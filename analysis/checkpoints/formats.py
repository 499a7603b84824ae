"""Read single tensors out of checkpoint files by byte range: safetensors and PyTorch's zip
`.bin`, from any seekable binary file object (a local file, or a remote file opened through
fsspec, e.g. huggingface_hub's HfFileSystem, whose reads are HTTP Range requests).

Only the index (safetensors' JSON header, or the zip directory plus `data.pkl`) and the
requested tensors' bytes are read. `.bin` pickles go through a restricted unpickler that
imports nothing outside an allow-list and executes nothing: it only records where each
tensor's bytes are.
"""

import io
import json
import math
import pickle
import struct
import zipfile
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
    """Where one tensor's bytes are: [start, end) in the file, its dtype and shape."""

    name: str
    dtype: str  # safetensors dtype name
    shape: tuple
    start: int
    end: int


_BYTES_READ = [0]  # process-wide count, for progress bars


def bytes_read() -> int:
    """Checkpoint bytes read by this process so far (headers, indexes and tensors)."""
    return _BYTES_READ[0]


def read_exact(f, start: int, length: int, where: str) -> bytes:
    f.seek(start)
    data = f.read(length)
    _BYTES_READ[0] += len(data)
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
    try:
        state = RestrictedUnpickler(zf.read(pkl[0]), where).load()
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
        local = read_exact(f, info.header_offset, 30, where)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        data_start = info.header_offset + 30 + name_len + extra_len
        itemsize = SAFETENSORS_DTYPES[ref.storage.dtype].itemsize
        start = data_start + ref.offset * itemsize
        end = start + _nbytes(ref.storage.dtype, ref.shape)
        if end > data_start + info.file_size:
            raise FormatError(f"{where}: tensor {name!r} runs past the end of its storage {member!r}")
        infos[name] = TensorInfo(name, ref.storage.dtype, ref.shape, start, end)
    return infos


def index(f, size: int, filename: str, where: str) -> dict[str, TensorInfo]:
    """The tensor index of a safetensors (.safetensors) or PyTorch zip (.bin, .pt) file."""
    if filename.endswith(".safetensors"):
        return safetensors_index(f, size, where)
    if filename.endswith((".bin", ".pt", ".pth")):
        return torch_zip_index(f, where)
    raise FormatError(f"{where}: unknown checkpoint format (expected .safetensors or .bin)")


def read_tensor(f, info: TensorInfo, where: str) -> np.ndarray:
    return decode(read_exact(f, info.start, info.end - info.start, where), info.dtype, info.shape)

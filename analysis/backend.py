"""Array module: CuPy when a CUDA device is usable, else NumPy; a setting can force either."""

import numpy as np


def _cupy_or_none():
    try:
        import cupy

        return cupy if cupy.cuda.is_available() else None
    except Exception:  # not installed, or no driver: both mean "no GPU here"
        return None


def array_module(choice: str = "auto"):
    """`choice`: "auto" | "numpy" | "cupy" (the `analysis.backend` setting)."""
    if choice == "numpy":
        return np
    if choice == "cupy":
        cp = _cupy_or_none()
        if cp is None:
            raise RuntimeError("analysis.backend is 'cupy' but CuPy cannot use a CUDA device here")
        return cp
    if choice != "auto":
        raise ValueError(f"analysis.backend: expected auto, numpy or cupy, got {choice!r}")
    return _cupy_or_none() or np


def to_numpy(a) -> np.ndarray:
    """Host copy of a NumPy or CuPy array."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def memory_budget(xp, fraction: float = 0.5, host_bytes: int = 4 << 30) -> int:
    """Bytes a batched computation may use: a fraction of free device memory on CuPy,
    `host_bytes` on NumPy (the machine's RAM is not ours alone)."""
    if xp is np:
        return host_bytes
    free, _total = xp.cuda.Device().mem_info
    return int(free * fraction)

"""Array module: CuPy when a CUDA device is usable, else NumPy; a setting can force either.

CuPy is detected here and nowhere else. Not installed, or no CUDA device, means NumPy.
CuPy installed but broken is an error: a silent fall-back would run a GPU job for hours on
the CPU and hide the broken installation.
"""

import functools
import importlib
import sys
from pathlib import Path

import numpy as np

from .errors import AnalysisError

# cudaGetDeviceCount's answers that mean "no GPU here" rather than "GPU misconfigured".
NO_DEVICE = 100  # cudaErrorNoDevice
NO_DRIVER = 35  # cudaErrorInsufficientDriver: also the answer on a machine with no NVIDIA driver at all
# Present when an NVIDIA kernel driver is loaded (Linux); then a driver error is a real problem.
DRIVER_FILE = Path("/proc/driver/nvidia/version")

WAY_OUT = "set `analysis.backend: numpy` (in _quarto.yml or the profile) to compute on the CPU"


class BackendError(AnalysisError, RuntimeError):
    """CuPy is installed but cannot compute here, or is asked for and absent."""


def _broken(problem: str, e: Exception) -> BackendError:
    return BackendError(f"CuPy is installed but {problem} ({type(e).__name__}: {e}). Fix the installation "
                        f"(a cupy-cuda*x wheel matching the machine's CUDA driver), uninstall CuPy, or {WAY_OUT}.")


def _driver_loaded() -> bool:
    return DRIVER_FILE.exists()


@functools.cache
def cupy_or_none():
    """CuPy if it can compute on a CUDA device; None if it is not installed or the machine has
    no CUDA device; BackendError if it is installed but broken. Checked once per process."""
    try:
        cupy = importlib.import_module("cupy")
    except ModuleNotFoundError as e:
        if e.name == "cupy":
            return None
        raise _broken(f"its dependency {e.name!r} is missing", e) from e
    except ImportError as e:
        # Older CuPy loads the driver library on import; without a driver that is "no GPU".
        if "libcuda.so" in str(e) and not _driver_loaded():
            return None
        raise _broken("cannot be imported", e) from e
    except Exception as e:
        raise _broken("cannot be imported", e) from e
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        status = getattr(e, "status", None)  # CuPy's CUDARuntimeError carries the CUDA error code
        if status == NO_DEVICE or (status == NO_DRIVER and not _driver_loaded()):
            return None
        raise _broken("cannot list CUDA devices", e) from e
    if n_devices == 0:
        return None
    try:
        # A first kernel is compiled (NVRTC) and run: a wheel built for another CUDA or a GPU
        # it has no code for fails here, not an hour into a computation.
        ok = float((cupy.arange(4, dtype=cupy.float64) * 2).sum()) == 12.0
    except Exception as e:
        raise _broken("cannot run a kernel on the GPU", e) from e
    if not ok:
        raise BackendError(f"CuPy computed a wrong result on the GPU (2 * [0, 1, 2, 3] does not sum to 12); {WAY_OUT}")
    return cupy


def array_module(choice: str = "auto"):
    """`choice`: "auto" | "numpy" | "cupy" (the `analysis.backend` setting). "numpy" never
    touches CuPy, so it is the way past a broken installation."""
    if choice == "numpy":
        return np
    if choice not in ("auto", "cupy"):
        raise ValueError(f"analysis.backend: expected auto, numpy or cupy, got {choice!r}")
    cp = cupy_or_none()
    if cp is None and choice == "cupy":
        raise BackendError(f"analysis.backend is 'cupy' but CuPy is not installed or sees no CUDA device here; {WAY_OUT}")
    return cp if cp is not None else np


def module_of(a):
    """The array module `a` lives on. Needs no detection: if CuPy was never imported, `a`
    cannot be a CuPy array."""
    cp = sys.modules.get("cupy")
    return cp if cp is not None and isinstance(a, cp.ndarray) else np


def to_numpy(a) -> np.ndarray:
    """Host copy of a NumPy or CuPy array."""
    return a.get() if module_of(a) is not np else np.asarray(a)


def memory_budget(xp, fraction: float = 0.5, host_bytes: int = 4 << 30) -> int:
    """Bytes a batched computation may use: a fraction of free device memory on CuPy,
    `host_bytes` on NumPy (the machine's RAM is not ours alone)."""
    if xp is np:
        return host_bytes
    free, _total = xp.cuda.Device().mem_info
    return int(free * fraction)

import importlib.abc
import importlib.util
import subprocess
import sys
import types

import numpy as np
import pytest

from analysis import backend
from analysis.cli import main

from .conftest import ROOT


@pytest.fixture(autouse=True)
def fresh_detection(monkeypatch, tmp_path):
    """Each test detects CuPy anew, on a machine with no NVIDIA driver unless it says so."""
    monkeypatch.setattr(backend, "DRIVER_FILE", tmp_path / "no-driver")
    backend.cupy_or_none.cache_clear()
    yield
    backend.cupy_or_none.cache_clear()  # never leave a fake CuPy detected for later tests


class CudaRuntimeError(RuntimeError):
    """Like cupy_backends' CUDARuntimeError: carries the CUDA error code as `status`."""

    def __init__(self, status):
        super().__init__(f"CUDA error {status}")
        self.status = status


def fake_cupy(monkeypatch, devices=1, arange=None):
    """A CuPy stand-in in sys.modules: `devices` is a count or an exception to raise."""

    def count():
        if isinstance(devices, Exception):
            raise devices
        return devices

    cp = types.ModuleType("cupy")
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
    cp.arange, cp.float64 = arange or np.arange, np.float64
    cp.ndarray = type("ndarray", (), {"get": lambda self: np.ones(2)})
    monkeypatch.setitem(sys.modules, "cupy", cp)
    return cp


def cupy_import_raises(monkeypatch, error):
    """`import cupy` finds a package whose import raises `error`, as a broken install does."""

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            raise error

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            return importlib.util.spec_from_loader(name, Loader()) if name == "cupy" else None

    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])


def test_numpy_backend_and_clear_error_when_cupy_is_forced_without_a_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # not installed
    assert backend.array_module("numpy") is np
    assert backend.cupy_or_none() is None
    assert backend.array_module("auto") is np
    with pytest.raises(RuntimeError, match="analysis.backend is 'cupy' but CuPy is not installed or sees no CUDA device"):
        backend.array_module("cupy")
    with pytest.raises(ValueError, match="expected auto, numpy or cupy"):
        backend.array_module("jax")


def test_cupy_with_a_device_is_the_auto_backend(monkeypatch):
    cp = fake_cupy(monkeypatch, devices=1)
    assert backend.array_module("auto") is cp and backend.array_module("cupy") is cp


@pytest.mark.parametrize("devices", [0, CudaRuntimeError(100), CudaRuntimeError(35)],
                         ids=["zero-devices", "cudaErrorNoDevice", "no-driver-installed"])
def test_cupy_installed_on_a_machine_without_a_gpu_means_numpy(monkeypatch, devices):
    fake_cupy(monkeypatch, devices=devices)
    assert backend.cupy_or_none() is None
    assert backend.array_module("auto") is np


def test_old_cupy_that_cannot_load_libcuda_without_a_driver_means_numpy(monkeypatch):
    cupy_import_raises(monkeypatch, ImportError("libcuda.so.1: cannot open shared object file: No such file or directory"))
    assert backend.array_module("auto") is np


def broken(match):
    return pytest.raises(backend.BackendError, match=rf"CuPy is installed but {match}.*analysis.backend: numpy")


def test_cupy_that_cannot_be_imported_fails_loudly(monkeypatch):
    cupy_import_raises(monkeypatch, ImportError("libnvrtc.so.12: cannot open shared object file"))
    with broken("cannot be imported .ImportError: libnvrtc.so.12"):
        backend.array_module("auto")
    error = ModuleNotFoundError("No module named 'fastrlock'", name="fastrlock")
    cupy_import_raises(monkeypatch, error)
    with broken("its dependency 'fastrlock' is missing"):
        backend.array_module("auto")
    cupy_import_raises(monkeypatch, AttributeError("module 'numpy' has no attribute 'bool8'"))
    with broken("cannot be imported .AttributeError"):
        backend.array_module("auto")


def test_a_driver_too_old_or_a_failing_device_fails_loudly(monkeypatch, tmp_path):
    (tmp_path / "no-driver").write_text("NVRM version: 470.00")  # a driver is loaded: 35 means too old
    fake_cupy(monkeypatch, devices=CudaRuntimeError(35))
    with broken("cannot list CUDA devices .CudaRuntimeError: CUDA error 35"):
        backend.array_module("auto")
    fake_cupy(monkeypatch, devices=CudaRuntimeError(999))
    with broken("cannot list CUDA devices"):
        backend.array_module("auto")


def test_a_kernel_that_cannot_compile_fails_loudly_and_numpy_is_the_way_out(monkeypatch):
    def arange(*a, **kw):
        raise RuntimeError("nvrtc: error: invalid value for --gpu-architecture")

    fake_cupy(monkeypatch, devices=1, arange=arange)
    with broken("cannot run a kernel on the GPU"):
        backend.array_module("auto")
    with broken("cannot run a kernel on the GPU"):
        backend.array_module("cupy")
    assert backend.array_module("numpy") is np  # never touches CuPy


def test_to_numpy_copies_device_arrays_and_passes_host_arrays(monkeypatch):
    a = np.arange(3.0)
    assert backend.module_of(a) is np and backend.to_numpy(a) is a
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert backend.module_of(a) is np
    cp = fake_cupy(monkeypatch)
    assert backend.module_of(cp.ndarray()) is cp
    np.testing.assert_array_equal(backend.to_numpy(cp.ndarray()), np.ones(2))


def test_cli_reports_a_bad_setting_and_exits_2(tmp_path, capsys):
    (tmp_path / "_quarto.yml").write_text("analysis:\n  colour: red\n")
    (tmp_path / "_quarto-x.yml").write_text("analysis: {}\n")
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["compute", "--profile", "x"]) == 2
    finally:
        os.chdir(cwd)
    assert "unknown setting 'colour'" in capsys.readouterr().err


def test_cli_reports_an_unknown_chapter_in_one_line_and_exits_2(capsys):
    assert main(["compute", "--profile", "smoke", "--chapter", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--chapter 'nope'" in err and "weight-distribution" in err


def test_module_entry_point_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "analysis", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train-tiny", "compute", "report"):
        assert command in out.stdout

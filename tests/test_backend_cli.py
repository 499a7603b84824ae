import subprocess
import sys

import numpy as np
import pytest

from analysis import backend
from analysis.cli import main

from .conftest import ROOT


def test_numpy_backend_and_clear_error_when_cupy_is_forced_without_a_gpu():
    assert backend.array_module("numpy") is np
    if backend._cupy_or_none() is None:
        assert backend.array_module("auto") is np
        with pytest.raises(RuntimeError, match="analysis.backend is 'cupy'"):
            backend.array_module("cupy")
    with pytest.raises(ValueError, match="expected auto, numpy or cupy"):
        backend.array_module("jax")


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


def test_module_entry_point_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "analysis", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train-tiny", "compute", "report"):
        assert command in out.stdout

"""GPU twins of the CPU spectra tests: CuPy results must match NumPy's to the same bound."""

import numpy as np
import pytest

from analysis import spectra
from analysis.backend import array_module

from ..test_spectra import matrix_with_spread

cp = pytest.importorskip("cupy")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cp.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (512, 2048)])
def test_cupy_singular_values_match_numpy_within_1e_9_of_sigma_max(shape):
    batch = np.stack([matrix_with_spread(*shape, 1e5, seed=s) for s in range(3)])
    xp = array_module("cupy")
    gpu = spectra.singular_values(xp.asarray(batch.astype(np.float32)), xp)
    assert isinstance(gpu, cp.ndarray)
    cpu = spectra.singular_values(batch.astype(np.float32))
    assert np.max(np.abs(gpu.get() - cpu)) <= 1e-9 * cpu[:, :1].max()

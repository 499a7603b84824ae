"""GPU twins of the CPU spectra tests: CuPy results must match NumPy's to the same bound.

Run on a CUDA machine with `pytest tests/gpu` (they skip elsewhere)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from analysis import baselines, spectra
from analysis.backend import array_module, cupy_or_none

from ..test_spectra import gram_stack, matrix_with_spread, near_rank_deficient

def one_draw(w, seed, xp=None):
    """The study's comparison for one matrix: its spectrum and one draw of each baseline."""
    return one_draw_batch(w[None], seed, xp=xp)[0]


def one_draw_batch(ws, seed, xp=None, budget_bytes=None):
    import numpy

    recs = baselines.with_draws(ws, [("test",)] * len(ws), seed, 1, xp or numpy, budget_bytes)
    return [{k: (v[0] if k in baselines.KINDS else v) for k, v in r.items()} for r in recs]


# The project's own detection: no CuPy or no device skips; a broken CuPy fails loudly here.
cp = cupy_or_none()
if cp is None:
    pytest.skip("no usable CUDA device with CuPy", allow_module_level=True)
pytestmark = [pytest.mark.gpu]


@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (512, 2048)])
def test_cupy_singular_values_match_numpy_within_1e_9_of_sigma_max(shape):
    batch = np.stack([matrix_with_spread(*shape, 1e5, seed=s) for s in range(3)])
    xp = array_module("cupy")
    gpu = spectra.singular_values(xp.asarray(batch.astype(np.float32)), xp)
    assert isinstance(gpu, cp.ndarray)
    cpu = spectra.singular_values(batch.astype(np.float32))
    assert np.max(np.abs(gpu.get() - cpu)) <= 1e-9 * cpu[:, :1].max()


@pytest.mark.parametrize("w", [
    near_rank_deficient(150, 100, 20, 0.0, 0),
    near_rank_deficient(100, 300, 50, 1e-9, 2),
    matrix_with_spread(100, 200, 1e12, seed=4),
], ids=["rank20-exact", "rank50-noise", "spread1e12"])
def test_cupy_refinement_of_small_values_meets_the_bar(w):
    ref = scipy.linalg.svdvals(w)
    gpu = spectra.singular_values(cp.asarray(w), cp).get()
    assert np.max(np.abs(gpu - ref)) <= 1e-9 * ref[0]


@pytest.mark.parametrize("route", spectra.EIGH_ROUTES)
def test_every_cupy_eigensolver_route_matches_numpy(route):
    if route == "torch":
        pytest.importorskip("torch")
    gram, ref = gram_stack(256, 512, 5)
    try:
        lam = spectra.eigvalsh(cp.asarray(gram), cp, route)
    except spectra.RouteUnavailable as e:  # xsyev before CUDA 12.6
        pytest.skip(str(e))
    assert isinstance(lam, cp.ndarray)
    assert np.max(np.abs(lam.get() - ref)) <= 1e-12 * ref.max()


def test_cupy_chunked_matches_one_batch():
    w = cp.asarray(np.random.default_rng(6).standard_normal((7, 64, 48)))
    per_matrix = 8 * (64 * 48 + 3 * 48 * 48)
    whole = spectra.singular_values(w, cp)
    chunked = spectra.singular_values_chunked(w, cp, budget_bytes=2 * per_matrix)
    assert np.max(np.abs(whole - chunked).get()) <= 1e-12 * float(whole.max())


def test_cupy_baselines_are_drawn_on_the_device_and_fit_the_entries():
    w = np.random.default_rng(4).logistic(0.01, 0.05, size=(512, 1024))
    gpu = one_draw(cp.asarray(w), 0, xp=cp)
    cpu = one_draw(w, 0)
    # The weights' own spectrum and the fits are the same computation on either module.
    assert np.max(np.abs(gpu["sv"] - cpu["sv"])) <= 1e-9 * cpu["sv"][0]
    for key in ("gaussian_loc", "gaussian_scale", "logistic_loc", "logistic_scale"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-9, abs=1e-15)
    # CuPy's generator draws other samples of the same law: their spectra are close in law.
    for kind in baselines.KINDS:
        assert scipy.stats.ks_2samp(gpu[kind], cpu[kind]).statistic < 0.1, kind
    shuffled = baselines.sample("shuffled", {}, w.shape, 3, cp.asarray(w), cp)
    assert np.array_equal(np.sort(shuffled.get().ravel()), np.sort(w.ravel()))
    assert not np.array_equal(shuffled.get(), w)
    logistic = baselines.sample("logistic", {"loc": 0.01, "scale": 0.05}, (2000, 2000), 1, xp=cp)
    assert float(logistic.mean()) == pytest.approx(0.01, abs=1e-3)
    assert float(logistic.std()) == pytest.approx(0.05 * np.pi / np.sqrt(3), rel=1e-2)


def test_threaded_route_waits_for_a_gram_made_on_another_stream():
    host = np.random.default_rng(7).standard_normal((8, 1024, 4096))
    ref = np.linalg.eigvalsh(host @ np.swapaxes(host, -1, -2))
    with cp.cuda.Stream(non_blocking=True):
        w = cp.asarray(host)
        gram = w @ cp.swapaxes(w, -1, -2)  # still running when the solves are queued
        lam = spectra.eigvalsh(gram, cp, "threads")
    assert np.max(np.abs(lam.get() - ref)) <= 1e-12 * ref.max()


def test_cupy_batch_gives_each_matrix_what_it_gets_alone():
    rng = np.random.default_rng(9)
    ws = cp.asarray(np.stack([rng.logistic(0, 0.02, (256, 512)), near_rank_deficient(256, 512, 40, 0.0, 1)]))
    alone = [one_draw(w, 4, xp=cp) for w in ws]
    batch = one_draw_batch(ws, 4, xp=cp)
    for a, b in zip(alone, batch):
        for key in a:
            assert np.allclose(a[key], b[key], rtol=0, atol=1e-12 * float(np.max(a["sv"]))), key

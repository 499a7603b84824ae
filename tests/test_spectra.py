import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from analysis import baselines, spectra


def one_draw(w, seed, xp=None):
    """The study's comparison for one matrix: its spectrum and one draw of each baseline."""
    return one_draw_batch(w[None], seed, xp=xp)[0]


def one_draw_batch(ws, seed, xp=None, budget_bytes=None):
    import numpy

    recs = baselines.with_draws(ws, [("test",)] * len(ws), seed, 1, xp or numpy, budget_bytes)
    return [{k: (v[0] if k in baselines.KINDS else v) for k, v in r.items()} for r in recs]


def matrix_with_spread(m, n, spread, seed):
    """An (m, n) matrix whose singular values span `spread` (log-uniformly)."""
    rng = np.random.default_rng(seed)
    k = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.logspace(0, -np.log10(spread), k)
    return (u * s) @ v.T


@pytest.mark.parametrize("shape", [(96, 32), (32, 96), (64, 64)])
def test_singular_values_match_lapack_within_1e_9_of_sigma_max(shape):
    rng = np.random.default_rng(0)
    batch = np.stack([matrix_with_spread(*shape, 1e5, seed=s) for s in range(3)] + [rng.standard_normal(shape)])
    ours = spectra.singular_values(batch)
    for w, sv in zip(batch, ours):
        ref = scipy.linalg.svdvals(w)
        assert sv.shape == ref.shape
        assert np.max(np.abs(sv - ref)) <= 1e-9 * ref[0]


def gram_stack(m, n, count):
    """(count, m, m) Gram matrices of 1e5-spread (m, n) matrices and their LAPACK eigenvalues."""
    w = np.stack([matrix_with_spread(m, n, 1e5, seed=s) for s in range(count)])
    gram = w @ np.swapaxes(w, -1, -2)
    return gram, np.linalg.eigvalsh(gram)


def near_rank_deficient(m, n, rank, noise, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) / np.sqrt(n) + noise * rng.standard_normal((m, n))


@pytest.mark.parametrize("w", [
    near_rank_deficient(150, 100, 20, 0.0, 0),
    near_rank_deficient(150, 100, 20, 1e-10, 1),
    near_rank_deficient(100, 300, 50, 1e-9, 2),
    near_rank_deficient(128, 128, 64, 1e-12, 3),
    matrix_with_spread(100, 200, 1e12, seed=4),
], ids=["rank20", "rank20+1e-10", "rank50+1e-9", "square-rank64", "spread1e12"])
def test_near_rank_deficient_matrices_keep_the_accuracy_bar(w):
    ref = scipy.linalg.svdvals(w)
    assert np.max(np.abs(spectra.singular_values(w) - ref)) <= 1e-9 * ref[0]
    # Without refinement the squared route misses it by an order of magnitude: the test bites.
    assert np.max(np.abs(spectra.singular_values(w, refine=False) - ref)) > 1e-9 * ref[0]


def test_float32_input_is_widened_so_small_singular_values_survive():
    w = matrix_with_spread(80, 40, 1e5, seed=1)
    w32 = w.astype(np.float32)
    ref = scipy.linalg.svdvals(w32.astype(np.float64))
    sv = spectra.singular_values(w32)
    assert sv.dtype == np.float64
    assert np.max(np.abs(sv - ref)) <= 1e-9 * ref[0]
    # The trap this guards against: a float32 Gram matrix loses the small half of the spectrum.
    lam32 = np.linalg.eigvalsh(w32.T @ w32)
    assert np.max(np.abs(np.sqrt(np.clip(lam32, 0, None))[::-1] - ref)) > 1e-5 * ref[0]


def test_single_matrix_and_batch_agree():
    w = np.random.default_rng(2).standard_normal((5, 40, 24))
    assert np.allclose(spectra.singular_values(w)[3], spectra.singular_values(w[3]), rtol=0, atol=1e-12)


def test_marchenko_pastur_density_integrates_to_one_and_matches_edges():
    m, n, var = 300, 1200, 0.02**2
    lo, hi = baselines.mp_edges(m, n, var)
    total, _ = scipy.integrate.quad(lambda s: baselines.mp_density(np.array([s]), m, n, var)[0], lo, hi, limit=200)
    assert total == pytest.approx(1.0, abs=1e-3)
    sv = spectra.singular_values(np.random.default_rng(3).normal(0, 0.02, (m, n)))
    assert sv[0] == pytest.approx(hi, rel=0.03) and sv[-1] == pytest.approx(lo, rel=0.05)


def test_baselines_fit_the_entries_and_have_the_same_shape():
    rng = np.random.default_rng(4)
    w = rng.logistic(0.01, 0.05, size=(120, 60))
    out = one_draw(w, 0)
    assert out["sv"].shape == out["gaussian"].shape == out["logistic"].shape == (60,)
    assert out["gaussian_scale"] == pytest.approx(w.std())
    assert out["logistic_scale"] == pytest.approx(0.05, rel=0.05)
    assert out["logistic_loc"] == pytest.approx(0.01, abs=0.005)
    # Same seed, same baseline: results are reproducible.
    again = one_draw(w, 0)
    assert np.array_equal(out["gaussian"], again["gaussian"])


def test_unknown_baseline_is_rejected():
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.sample("cauchy", {}, (2, 2), 0)


def test_chunked_batches_match_one_batch():
    w = np.random.default_rng(6).standard_normal((7, 30, 20))
    whole = spectra.singular_values(w)
    per_matrix = 8 * (30 * 20 + 3 * 20 * 20)
    chunked = spectra.singular_values_chunked(w, budget_bytes=2 * per_matrix)  # chunks of 2
    assert np.array_equal(whole, chunked)


@pytest.mark.parametrize("route", spectra.EIGH_ROUTES)
def test_every_eigensolver_route_gives_the_same_eigenvalues(route):
    if route == "torch":
        pytest.importorskip("torch")
    gram, ref = gram_stack(40, 90, 3)
    lam = spectra.eigvalsh(gram, np, route)
    assert lam.shape == ref.shape
    assert np.max(np.abs(lam - ref)) <= 1e-12 * ref.max()


def test_unknown_eigensolver_route_is_rejected():
    with pytest.raises(ValueError, match="eigensolver route 'qr'"):
        spectra.eigvalsh(np.eye(3)[None].repeat(2, 0), np, "qr")


def test_baseline_draws_equal_numpys_own_samplers():
    """The module-agnostic samplers draw what Generator.normal/.logistic/.permutation draw."""
    w = np.random.default_rng(1).normal(0, 0.02, (30, 40))
    params = {"loc": 0.001, "scale": 0.02}
    g = baselines.sample("gaussian", params, w.shape, 3)
    assert np.array_equal(g, np.random.default_rng(3).normal(0.001, 0.02, w.shape))
    lg = baselines.sample("logistic", params, w.shape, 3)
    assert np.allclose(lg, np.random.default_rng(3).logistic(0.001, 0.02, w.shape), rtol=1e-13, atol=1e-16)
    sh = baselines.sample("shuffled", {}, w.shape, 3, w)
    assert np.array_equal(sh, np.random.default_rng(3).permutation(w.ravel()).reshape(w.shape))


def test_logistic_fit_subsamples_by_index_as_choice_does():
    w = np.random.default_rng(2).standard_t(3, (300, 200))
    sub = np.random.default_rng(5).choice(w.ravel(), 10_000, replace=False)
    import scipy.stats

    loc, scale = scipy.stats.logistic.fit(sub)
    assert baselines.fit_logistic(w, max_entries=10_000, seed=5) == {"loc": loc, "scale": scale}


@pytest.mark.parametrize("shape", [(300, 600), (512, 512)])
def test_values_just_above_the_refinement_cut_meet_the_bar_unrefined(shape):
    """Nothing above REFINE_BELOW * sigma_max is refined, so the Gram route alone must meet the bar there."""
    w = matrix_with_spread(*shape, 0.99 / spectra.REFINE_BELOW, seed=8)
    ref = scipy.linalg.svdvals(w)
    assert ref[-1] > spectra.REFINE_BELOW * ref[0]
    assert np.max(np.abs(spectra.singular_values(w, refine=False) - ref)) <= 1e-9 * ref[0]


def test_a_batch_gives_each_matrix_what_it_gets_alone():
    """compute.spectra solves a (step, role) batch at a time; records must not depend on that,
    including the refinement path (the rank-deficient matrix) and budget-sized chunks."""
    rng = np.random.default_rng(9)
    ws = np.stack([rng.logistic(0, 0.02, (60, 90)), near_rank_deficient(60, 90, 10, 0.0, 1),
                   rng.normal(0, 0.02, (60, 90))])
    alone = [one_draw(w, 4) for w in ws]
    per = 4 * 8 * (60 * 90 + 3 * 60 * 60)
    for budget in (None, 2 * per):  # one chunk; chunks of 2
        batch = one_draw_batch(ws, 4, budget_bytes=budget)
        for a, b in zip(alone, batch):
            assert a.keys() == b.keys()
            for key in a:
                assert np.array_equal(a[key], b[key]), key


def repeated_values(m, n, seed):
    """An (m, n) matrix whose singular values come in runs of equal values (clusters of any solver)."""
    rng = np.random.default_rng(seed)
    k = min(m, n)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    s = np.repeat([1.0, 0.5, 1e-3, 1e-7], -(-k // 4))[:k]
    return (u * s) @ v.T


@pytest.mark.parametrize("route", ["mixed", "two-stage", "xsyev"])
@pytest.mark.parametrize("w", [
    near_rank_deficient(150, 100, 20, 0.0, 0),
    near_rank_deficient(100, 300, 50, 1e-9, 2),
    matrix_with_spread(100, 200, 1e12, seed=4),
    repeated_values(120, 90, 5),
    np.random.default_rng(7).standard_normal((300, 200)),
], ids=["rank20", "rank50+1e-9", "spread1e12", "repeated", "gaussian"])
def test_candidate_routes_keep_the_accuracy_bar(route, w, monkeypatch):
    """The issue-16 candidates (float32 solve + float64 refinement, band reduction, Xsyev's twin)
    give singular values within 1e-9 sigma_max of LAPACK's, on the matrices that break naive
    refinement: tiny and repeated values form clusters the refinement cannot split."""
    monkeypatch.setitem(spectra.EIGH_ROUTE, "numpy", route)
    ref = scipy.linalg.svdvals(w)
    assert np.max(np.abs(spectra.singular_values(w) - ref)) <= 1e-9 * ref[0]


def test_mixed_route_without_the_cluster_solve_would_miss_the_bar(monkeypatch):
    """The float64 cluster solve is what keeps the bar: with MIXED_TOL so loose that nothing
    counts as a cluster, a 1e12-spread Gram matrix's eigenvalues near the float32 noise floor
    come out wrong by far more than LAPACK's error."""
    w = matrix_with_spread(100, 200, 1e12, seed=4)
    gram = (w @ w.T)[None]
    ref = np.linalg.eigvalsh(gram)
    good = spectra.eigvalsh(gram, np, "mixed")
    monkeypatch.setattr(spectra, "MIXED_TOL", 1e30)
    loose = spectra.eigvalsh(gram, np, "mixed")
    assert np.max(np.abs(good - ref)) <= 1e-14 * ref.max()
    assert np.max(np.abs(loose - ref)) > 1e-12 * ref.max()


@pytest.mark.parametrize("k, band", [(37, 8), (64, 16), (40, 39), (5, 8)])
def test_band_reduction_keeps_the_eigenvalues(k, band):
    """Stage 1 of the two-stage route is an orthogonal similarity onto a band, whatever the
    last panel's size (37 = 4 panels of 8 + 5; a band as wide as the matrix; a tiny matrix)."""
    g = np.random.default_rng(k).standard_normal((k, 2 * k))
    g = g @ g.T
    lb = spectra._to_band(g, band, np)
    assert lb.shape == (band + 1, k)
    lam = scipy.linalg.eig_banded(lb, lower=True, eigvals_only=True)
    assert np.max(np.abs(lam - np.linalg.eigvalsh(g))) <= 1e-12 * np.abs(lam).max()

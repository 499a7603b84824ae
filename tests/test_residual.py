import itertools

import numpy as np
import pytest

from analysis import measures, residual


def explicit_path_sum(ws: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """Test oracle: sum over all 2^L subsets of blocks of the ordered product of their W's.
    Returns the sum and, per path length k, the list of path matrices."""
    d = ws[0].shape[0]
    total, by_length = np.zeros((d, d)), {k: [] for k in range(len(ws) + 1)}
    for subset in itertools.product([0, 1], repeat=len(ws)):
        p = np.eye(d)
        for use, w in zip(subset, ws):  # later blocks multiply on the left
            if use:
                p = w @ p
        total += p
        by_length[sum(subset)].append(p)
    return total, by_length


def test_product_of_residual_blocks_is_the_sum_over_all_paths():
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((12, 12)) / np.sqrt(12) for _ in range(5)]
    product = np.eye(12)
    for w in ws:
        product = (np.eye(12) + w) @ product
    total, by_length = explicit_path_sum(ws)
    np.testing.assert_allclose(total, product, atol=1e-12)
    assert [len(v) for v in by_length.values()] == [1, 5, 10, 10, 5, 1]


@pytest.mark.parametrize("sigma2", [1.0, 0.5])
def test_path_length_variance_shares_match_the_binomial_formula(sigma2):
    depth, d, trials = 6, 24, 120
    rng = np.random.default_rng(1)
    energy = np.zeros(depth + 1)
    for _ in range(trials):
        ws = [rng.standard_normal((d, d)) * np.sqrt(sigma2 / d) for _ in range(depth)]
        x = rng.standard_normal(d)
        _, by_length = explicit_path_sum(ws)
        energy += [sum(np.sum((p @ x) ** 2) for p in paths) for k, paths in by_length.items()]
    shares = energy / energy.sum()
    expected = residual.path_length_shares(depth, sigma2)
    assert expected.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(shares, expected, atol=0.03)


def test_batched_simulation_equals_a_per_seed_loop():
    batched = residual.simulate(32, 6, 5, n_inputs=3, seed=7, spectra=False)
    looped = residual.simulate_per_seed_loop(32, 6, 5, n_inputs=3, seed=7)
    np.testing.assert_allclose(batched["act"], looped["act"], rtol=1e-10, atol=1e-12)


def test_simulation_variance_grows_as_one_plus_sigma2_to_the_depth():
    sim = residual.simulate(128, 8, 8, sigma2=1.0, n_inputs=16, seed=2, aspects=(1.0, 0.25))
    growth = sim["act"].var(axis=(1, 2)) / 2.0 ** np.arange(1, 9)
    np.testing.assert_allclose(growth, 1.0, rtol=0.25)
    assert sim["sv_128"].shape == (8, 8, 128) and sim["sv_32"].shape == (8, 8, 32)


def test_non_gaussianity_grows_with_depth():
    sim = residual.simulate(96, 12, 4, seed=3)
    curves = residual.depth_curves(sim, 96, alpha_seeds=2)
    assert curves["ks_mp"][-1] > curves["ks_mp"][0] + 0.2
    assert curves["kurtosis"][-1] > curves["kurtosis"][0]


def test_effective_depth_recovers_the_depth_of_a_toy_matrix():
    sim = residual.simulate(96, 12, 6, seed=4, aspects=(1.0, 1 / 3))
    other = residual.simulate(96, 12, 1, seed=99, aspects=(1.0, 1 / 3))
    for true_depth in (3, 8):
        target = other["sv_32"][true_depth - 1, 0]  # a (96, 32) block of an independent M_L
        found = residual.effective_depth(target, 96, 32, sim, 96)
        assert abs(found["depth"] - true_depth) <= 1
        assert found["low"] <= found["depth"] <= found["high"] + 1e-9
    with pytest.raises(KeyError, match="no spectra at aspect"):
        residual.effective_depth(target, 96, 48, sim, 96)


def test_mp_reference_is_the_quarter_circle_for_a_gaussian_square_matrix():
    w = np.random.default_rng(5).standard_normal((400, 400))
    sv = np.linalg.svd(w, compute_uv=False)
    assert measures.ks_distance(sv, residual.mp_reference(400, sv)) < 0.05

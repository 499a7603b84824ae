import numpy as np
import pytest

from analysis import baselines, measures
from analysis.spectra import singular_values


def test_draws_differ_across_matrices_and_draws_and_are_reproducible():
    w = np.random.default_rng(0).standard_normal((3, 48, 16))
    ids = [("raw", 0, 0, "qkv"), ("raw", 1, 0, "qkv"), ("raw", 0, 1, "qkv")]
    recs = baselines.with_draws(w, ids, 0, 4)
    again = baselines.with_draws(w, ids, 0, 4)
    one_at_a_time = [baselines.with_draws(w[i : i + 1], ids[i : i + 1], 0, 4)[0] for i in range(3)]
    for kind in baselines.KINDS:
        draws = np.concatenate([r[kind] for r in recs])  # (3 * 4, k)
        assert len({d.tobytes() for d in draws}) == len(draws), kind  # no two draws alike
        for a, b, c in zip(recs, again, one_at_a_time):
            assert np.array_equal(a[kind], b[kind]) and np.array_equal(a[kind], c[kind])
    # Another step, block or role (same weights) gives other draws; the settings' seed too.
    assert not np.array_equal(baselines.with_draws(w[:1], [("raw", 0, 0, "mlp_in")], 0, 4)[0]["gaussian"], recs[0]["gaussian"])
    assert not np.array_equal(baselines.with_draws(w[:1], ids[:1], 1, 4)[0]["gaussian"], recs[0]["gaussian"])


def test_draw_seed_depends_on_every_part_of_the_identity():
    base = baselines.draw_seed(0, "raw", 4, 2, "qkv", "gaussian", 0)
    for change in [(1, "raw", 4, 2, "qkv", "gaussian", 0), (0, "deduped", 4, 2, "qkv", "gaussian", 0),
                   (0, "raw", 8, 2, "qkv", "gaussian", 0), (0, "raw", 4, 3, "qkv", "gaussian", 0),
                   (0, "raw", 4, 2, "mlp_in", "gaussian", 0), (0, "raw", 4, 2, "qkv", "logistic", 0),
                   (0, "raw", 4, 2, "qkv", "gaussian", 1)]:
        assert baselines.draw_seed(*change) != base


def test_scaled_control_has_the_matrix_row_and_column_spread():
    rng = np.random.default_rng(0)
    w = np.exp(rng.normal(0, 0.5, 200))[:, None] * rng.standard_normal((200, 100))
    p = baselines.fit_scales(w)
    c = baselines.sample_scaled(p, w.shape, 1)
    assert p["row_sigma"] == pytest.approx(0.5, abs=0.1)
    assert np.log(np.linalg.norm(c, axis=1)).std() == pytest.approx(p["row_sigma"], abs=0.1)


def test_scaled_control_lacks_product_structure():
    # A product of Gaussian matrices (the toy's kind of matrix) has a spectrum the control,
    # fitted to its row and column norms, does not reproduce: the control is no product.
    rng = np.random.default_rng(0)
    d = 128
    prod = np.eye(d)
    for _ in range(8):
        prod = prod + rng.standard_normal((d, d)) / np.sqrt(d) @ prod
    other = np.eye(d)
    for _ in range(8):
        other = other + rng.standard_normal((d, d)) / np.sqrt(d) @ other
    sv, sv_other = singular_values(prod), singular_values(other)
    control = singular_values(baselines.sample_scaled(baselines.fit_scales(prod), prod.shape, 0))
    assert measures.w1_distance(sv, control) > 3 * measures.w1_distance(sv, sv_other)


def test_against_draws_compares_no_draw_with_itself():
    rng = np.random.default_rng(0)
    draws = {k: np.sort(rng.random((4, 32)))[:, ::-1] for k in ("gaussian", "logistic", "shuffled")}
    _, rows = measures.against_draws(draws["gaussian"][0], draws)
    w1 = {(k, i): v for k, i, m, v in rows if m == "w1_gaussian"}
    g = draws["gaussian"]
    expected = np.mean([measures.w1_distance(g[0], g[j]) for j in (1, 2, 3)])  # not against itself
    assert w1[("gaussian", 0)] == pytest.approx(expected, rel=1e-9)

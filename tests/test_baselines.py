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


def test_paired_measures_compare_weights_and_null_draws_with_one_reference_set():
    rng = np.random.default_rng(0)
    draws = {k: np.sort(rng.random((6, 32)))[:, ::-1] for k in ("gaussian", "logistic", "shuffled")}
    sv = np.sort(rng.random(32))[::-1]
    weights, rows = measures.against_draws(sv, draws)
    g = draws["gaussian"]
    ref = range(measures.reference_draws(6))  # draws 0-2
    assert weights["w1_gaussian"] == pytest.approx(np.mean([measures.w1_distance(sv, g[j]) for j in ref]), rel=1e-9)
    w1 = {i: v for k, i, m, v in rows if k == "gaussian" and m == "w1_gaussian"}
    assert sorted(w1) == [3, 4, 5]  # only the null members get paired measures
    assert w1[4] == pytest.approx(np.mean([measures.w1_distance(g[4], g[j]) for j in ref]), rel=1e-9)
    assert {i for k, i, m, v in rows if k == "gaussian" and m == "tail"} == set(range(6))


@pytest.mark.slow
def test_excess_distance_band_keeps_its_level_when_the_weights_are_one_more_draw():
    from analysis import intervals as iv

    rng = np.random.default_rng(7)
    hits, n = 0, 300
    for _ in range(n):
        svs = [singular_values(rng.standard_normal((64, 32))) for _ in range(11)]
        weights, rows = measures.against_draws(svs[0], {k: np.stack(svs[1:]) for k in ("gaussian", "logistic", "shuffled")})
        null = [v for k, i, m, v in rows if k == "gaussian" and m == "w1_gaussian"]
        hits += iv.above(weights["w1_gaussian"], iv.prediction_band(null, 0.95)) != iv.UNDECIDED
    assert hits / n < 0.05 + 2 * np.sqrt(0.05 * 0.95 / n)

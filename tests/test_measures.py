import numpy as np
import pytest
import pandas as pd
import scipy.stats

from analysis import baselines, measures, parallel, spectra
from analysis.errors import AnalysisError


def one_draw(w, seed, xp=None):
    """The study's comparison for one matrix: its spectrum and one draw of each baseline."""
    return one_draw_batch(w[None], seed, xp=xp)[0]


def one_draw_batch(ws, seed, xp=None, budget_bytes=None):
    import numpy

    recs = baselines.with_draws(ws, [("test",)] * len(ws), seed, 1, xp or numpy, budget_bytes)
    return [{k: (v[0] if k in baselines.KINDS else v) for k, v in r.items()} for r in recs]


def gaussian(m, n, seed, scale=0.02):
    return np.random.default_rng(seed).normal(0, scale, (m, n))


def test_a_gaussian_matrix_looks_like_its_own_baselines():
    w = gaussian(400, 200, 0)
    out = one_draw(w, 1)
    assert measures.near_zero_fraction(out["sv"], out["gaussian"], 0.1) == pytest.approx(0.1, abs=0.06)
    assert measures.top_ratio(out["sv"], out["gaussian"]) == pytest.approx(1.0, abs=0.05)
    assert measures.ks_distance(out["sv"], out["gaussian"]) < 0.15
    assert measures.spikes(out["sv"], 400, 200, out["gaussian_scale"] ** 2) <= 2
    assert abs(measures.excess_kurtosis(w)) < 0.1


def test_shuffled_baseline_keeps_the_entries_and_destroys_structure():
    rng = np.random.default_rng(2)
    w = gaussian(200, 100, 3) + 0.5 * np.outer(rng.standard_normal(200), rng.standard_normal(100)) / 100
    out = one_draw(w, 0)
    shuffled = baselines.sample("shuffled", {}, w.shape, 0, w)
    assert np.array_equal(np.sort(shuffled.ravel()), np.sort(w.ravel()))
    assert measures.spikes(out["sv"], 200, 100, w.var()) >= 1  # the planted rank-1 spike
    assert out["sv"][0] > 1.5 * out["shuffled"][0]  # shuffling removes it


def test_powerlaw_alpha_recovers_a_pareto_tail():
    lam = scipy.stats.pareto.rvs(b=2.0, size=3000, random_state=4)  # density ~ lam^-(b+1)
    fit = measures.powerlaw_alpha(np.sqrt(lam))
    assert fit["alpha"] == pytest.approx(3.0, abs=0.2)
    assert fit["n_tail"] > 100


def test_stable_rank_and_mp_edge_fractions():
    assert measures.stable_rank(np.ones(50)) == pytest.approx(50)
    assert measures.stable_rank(np.r_[10.0, np.zeros(9)]) == pytest.approx(1)
    assert measures.below_mp_edge(np.array([0.0, 1.0]), 100, 100, 1.0) == 0  # square: edge at 0
    assert measures.below_median_fraction(np.r_[np.full(9, 1.0), 0.01]) == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["gaussian", "logistic"])
def test_sampled_baselines_approach_marchenko_pastur_as_the_matrix_grows(kind):
    """Universality: any i.i.d. entries with finite variance give MP in the limit."""
    params = {"gaussian": {"loc": 0.0, "scale": 1.0}, "logistic": {"loc": 0.0, "scale": np.sqrt(3) / np.pi}}[kind]
    distances = []
    for m in (40, 160, 640):
        n = 2 * m
        sv = spectra.singular_values(baselines.sample(kind, params, (m, n), seed=5))
        distances.append(scipy.stats.kstest(sv, lambda s: baselines.mp_cdf(s, m, n, 1.0)).statistic)
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.03


def _powerlaw_search(x):
    import contextlib
    import io
    import warnings

    import powerlaw

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return powerlaw.Fit(x, verbose=False).xmin


def test_ks_optimal_xmin_is_the_one_powerlaw_picks():
    """Our one-pass search must pick exactly the xmin of powerlaw 1.5's own per-candidate search,
    on light and heavy tails and on data with repeated values."""
    rng = np.random.default_rng(0)
    cases = [spectra.singular_values(rng.normal(0, 0.02, (120, 300))) ** 2,
             spectra.singular_values(rng.standard_t(3, (200, 200)) * 0.01) ** 2,
             spectra.singular_values(rng.standard_t(2.5, (64, 320))) ** 2,
             rng.pareto(2.0, 400) + 1,
             np.round(rng.pareto(1.5, 500) + 1, 1)]  # many ties
    for x in cases:
        assert measures.ks_optimal_xmin(x) == _powerlaw_search(x)


def test_ks_optimal_xmin_needs_two_distinct_values():
    assert np.isnan(measures.ks_optimal_xmin(np.ones(10)))
    assert np.isnan(measures.powerlaw_alpha(np.ones(10))["alpha"])


def test_excess_kurtosis_is_scipys():
    import scipy.stats

    rng = np.random.default_rng(3)
    for w in (rng.normal(size=(50, 80)), rng.logistic(size=(200, 100)), rng.standard_t(5, size=(30, 30)).astype(np.float32)):
        assert measures.excess_kurtosis(w) == pytest.approx(scipy.stats.kurtosis(w.astype(np.float64).ravel()), rel=1e-10)


def test_tail_alpha_equals_powerlaws_fit_at_the_same_xmin():
    rng = np.random.default_rng(3)
    for sv in (np.sqrt(rng.pareto(2.5, 300) + 1), rng.standard_normal((200, 80)).std(axis=0) * 10,
               np.linalg.svd(rng.standard_t(3, (150, 60)), compute_uv=False)):
        assert measures.tail_alpha(sv) == pytest.approx(measures.powerlaw_alpha(sv)["alpha"], rel=1e-12)


def test_tables_in_processes_give_the_rows_of_one_process_in_order(monkeypatch):
    rng = np.random.default_rng(3)
    ws = rng.normal(0, 0.02, (5, 24, 40)) * rng.lognormal(0, 0.5, (5, 24, 1))  # uneven rows: non-Gaussian spectra
    ids = [("r", step, 0, "mlp_in") for step in range(5)]
    records = baselines.with_draws(ws, ids, 0, 4)
    for rec, (run, step, block, role) in zip(records, ids):
        rec.update(run=run, step=step, block=block, role=role, std=rec["gaussian_scale"], rows=24, cols=40)
    one = measures.tables(records, processes=1)
    two = measures.tables(records, processes=2)  # chunks of 3 and 2 records, spawned
    monkeypatch.setattr(measures, "MIN_RECORDS_PER_PROCESS", 2)  # the default path: chunks of 2, 2 and 1
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    default = measures.tables(records)
    for a, b, c in zip(one, two, default):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        pd.testing.assert_frame_equal(a, c, check_exact=True)
    assert list(one[0]["step"].drop_duplicates()) == [0, 1, 2, 3, 4]


def test_tables_names_the_record_whose_measures_are_not_finite_from_a_worker_too():
    rng = np.random.default_rng(4)
    records = baselines.with_draws(rng.normal(0, 0.02, (2, 16, 16)), [("r", 0, 0, "qkv"), ("r", 1, 0, "qkv")], 0, 4)
    for i, rec in enumerate(records):
        rec.update(run="r", step=i, block=0, role="qkv", std=rec["gaussian_scale"], rows=16, cols=16)
    records[1]["kurtosis"] = float("nan")
    with pytest.raises(AnalysisError, match=r"run 'r' step 1 block 0 qkv: non-finite kurtosis"):
        measures.tables(records, processes=2)

"""The scale study: the `sizes` setting, one Results view per size, and report/scale.qmd
executed against a hub-shaped suite of two sizes of random-weight models on a fake hub."""

import os

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import config, report, results, scale
from analysis.plots import scale as scale_plots
from analysis.testing.fake_hub import FakeHub, client_on

from .conftest import HUB_SIZES, HUB_STEPS, ROOT, hub_size_runs, hub_suite_settings, project_copy, serve_hub_suite


def load(root, profile="suite", cache=None):
    os.environ["ANALYSIS_CACHE_DIR"] = str(cache or root / ".cache")
    try:
        return config.load(root=root, profile=profile)
    finally:
        os.environ.pop("ANALYSIS_CACHE_DIR")


@pytest.mark.parametrize("sizes,match", [
    ({"name": "s"}, r"sizes: expected a list"),
    ([{"name": "s", "parameters": 10}], r"sizes\[0\]: expected exactly \{name, parameters, runs\}"),
    ([{"name": "s", "parameters": 0, "runs": {"reference": "raw"}}], r"sizes\[0\].parameters: expected"),
    ([{"name": "s", "parameters": 10, "runs": {"reference": "raw", "other": 1}}], r"sizes\[0\].runs: unknown key"),
    ([{"name": "s", "parameters": 10, "runs": {"reference": "nope"}}], r"sizes\[0\].runs: tiny suite has no run"),
    ([{"name": "s", "parameters": 10, "runs": {"reference": "raw"}}] * 2, r"a size is named twice"),
])
def test_bad_sizes_are_named(tmp_path, sizes, match):
    root = project_copy(tmp_path, "bad", {"sizes": sizes}, files=())
    with pytest.raises(config.ConfigError, match=match):
        load(root, "bad")


def test_a_size_is_the_same_analysis_with_its_runs_keyed_apart_from_the_other_sizes(tmp_path):
    cfg = load(project_copy(tmp_path, "two", {"sizes": [
        {"name": "a", "parameters": 1, "runs": {"reference": "raw", "treatment": "deduped", "replicas": ["raw-seed2"]}},
        {"name": "b", "parameters": 2, "runs": {"reference": "raw", "treatment": None, "replicas": []}}]}, files=()), "two")
    r = results.Results(cfg)
    a, b = r.size("a"), results.Results(cfg).size("b")
    assert a.cfg["runs"] == cfg["runs"] and b.cfg["runs"] == {"reference": "raw", "treatment": None, "replicas": []}
    assert a.cfg["architectures"] == {} and {k: v for k, v in a.cfg.items() if k != "architectures"} == \
        {k: v for k, v in cfg.items() if k != "architectures"}
    # `sizes` is no result setting: the same runs share cached tables, other runs do not
    strip = lambda c: {k: v for k, v in c.items() if k not in results.NOT_RESULTS}  # noqa: E731
    assert strip(a.cfg) == strip({**cfg, "sizes": [], "architectures": {}}) and strip(a.cfg) != strip(b.cfg)
    with pytest.raises(config.ConfigError, match="has no size 'c'"):
        r.size("c")


def test_a_size_without_treatment_or_replicas_has_no_noise_floor_for_run_comparisons():
    assert scale.no_comparison({"reference": "x", "treatment": "y", "replicas": ["z"]}) == ""
    assert scale.no_comparison({"reference": "x", "treatment": "y", "replicas": []}) == "no replica runs"
    assert scale.no_comparison({"reference": "x", "treatment": None, "replicas": []}) == \
        "no deduplicated run; no replica runs"


def test_scale_figure_shows_each_verdict_per_size_and_the_measure_against_parameters():
    verdicts = ["holds", "does not hold", "undecided", "mixed"]
    table = pd.DataFrame([{"size": s, "parameters": p, "claim": c, "part": f"part {c}", "verdict": verdicts[(i + c) % 4]}
                          for i, (s, p) in enumerate([("big", 2e9), ("small", 1e6)]) for c in (1, 2, 3, 4)])
    tail = pd.DataFrame([{"size": s, "parameters": p, "role": role, "effect": e, "noise_low": 0.9, "noise_high": 1.1,
                          "verdict": "holds"} for s, p, e in [("small", 1e6, 1.5), ("big", 2e9, 2.0)]
                         for role in ("qkv", "mlp_in")])
    fig = scale_plots.verdicts_and_tail(table, tail)
    assert isinstance(fig, Figure)
    grid, curve = fig.axes[0], fig.axes[1]
    assert [t.get_text().split("\n")[0] for t in grid.get_xticklabels()] == ["small", "big"]  # by parameter count
    shown = grid.images[0].get_array()
    assert shown.shape == (4, 2) and len({float(x) for x in shown.ravel()}) == 4  # all four verdicts appear
    assert curve.get_xscale() == "log" and len(curve.lines) == 3  # two roles and the Gaussian line


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory):
    with FakeHub() as hub, client_on(hub.url):
        serve_hub_suite(hub, tmp_path_factory.mktemp("hub-src"))
        yield project_copy(tmp_path_factory.mktemp("suite-root"), "suite", hub_suite_settings())


@pytest.mark.slow
def test_scale_chapter_executes_on_a_hub_suite_of_two_sizes(suite_root, monkeypatch):
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(suite_root / ".cache"))
    monkeypatch.setenv("HF_HOME", str(suite_root / "hf-home"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's package
    nb = report.execute_chapter(suite_root / "report" / "scale.qmd", "suite")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the figure

    # what the chapter says is what the per-size results hold (now cached: read, not recomputed)
    r = results.Results(load(suite_root, cache=suite_root / ".cache"))
    table = scale.verdicts_by_size(r)
    assert set(table["size"]) == set(HUB_SIZES) and len(r.size("s").spectra) == 3 * len(HUB_STEPS) * 16
    s4 = table[(table["size"] == "s") & (table["claim"] == 4)]
    m4 = table[(table["size"] == "m") & (table["claim"] == 4)]
    assert len(s4) >= 3 and (s4["detail"] == "").all()  # size s: claim 4 tested against its replica
    assert list(m4["verdict"]) == ["undecided"] and "no deduplicated run; no replica runs" in m4["detail"].iloc[0]
    assert "`m`: undecided: no deduplicated run; no replica runs, so no noise floor" in text
    counts = scale.claim_counts(table)
    for claim in (1, 2, 3, 4):
        c = counts.loc[claim]
        assert (f"**{claim}.** " in text and f"{c['holds']} hold, {c['does not hold']} do not hold, "
                f"{c['undecided']} undecided, {c['mixed']} mixed" in text)
    for name in HUB_SIZES:
        assert f"`{name}` ({r.cfg['sizes'][list(HUB_SIZES).index(name)]['parameters']:,} parameters)" in text
    tail = scale.tail_by_size(r)
    assert set(tail["size"]) == set(HUB_SIZES) and set(tail["role"]) == {"qkv", "mlp_in", "mlp_out"}
    assert hub_size_runs("s")["reference"].endswith("pythia-s")

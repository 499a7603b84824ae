"""Every chapter listed in _quarto.yml executes through Jupyter on the smoke suite."""

import re

import imageio_ffmpeg
import pytest

from analysis import report

from .conftest import ROOT


def test_chapter_list_comes_from_quarto_yml_and_every_file_exists():
    chapters = report.chapters(ROOT)
    assert chapters[0].name == "index.qmd"
    assert ROOT / "report" / "weight-distribution.qmd" in chapters
    assert all(p.is_file() for p in chapters)


def test_qmd_python_chunks_become_code_cells():
    nb = report.read_chapter(ROOT / "report" / "weight-distribution.qmd")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 5 and "results.load()" in code[0].source


@pytest.mark.slow
def test_every_chapter_executes_and_writes_its_figures(smoke_preview):
    out, figures, written = smoke_preview
    assert [p.name for p in written] == ["index.html", "report-weight-distribution.html", "report-residual-paths.html",
                                         "report-depth-trends.html", "report-pythia-published.html",
                                         "report-deduplication.html", "report-residual-architectures.html",
                                         "report-init-spectrum.html", "report-methods.html", "report-audit.html"]
    index = (out / "index.html").read_text()
    assert all(f"<strong>{n}.</strong>" in index for n in (1, 2, 3, 4))  # every claim with computed tests
    assert re.search(r"Over all \d+ tested rows: \d+ hold", index) and "Traceback" not in index
    assert "No correction for multiple comparisons" in index and "never assumed" not in index
    html = (out / "report-weight-distribution.html").read_text()
    assert html.count("data:video/mp4;base64,") == 3  # one animation per run (reference, treatment, replica)
    assert "data:image/png;base64," in html  # static figures
    assert "Traceback" not in html and "{python}" not in html
    assert re.search(r"\d+ of \d+ tested parts of the claim hold", html)
    assert re.search(r"for <strong>\d+ of \d+</strong> matrices", html)  # logistic agreement: a check, not rows
    toy = (out / "report-residual-paths.html").read_text()
    assert re.search(r"on the held-out seeds, is <strong>[\d.]+</strong>", toy)
    assert toy.count("data:image/png;base64,") >= 5 and "Traceback" not in toy
    assert "must beat every non-product control" in toy and "nearest control: " in toy
    trends = (out / "report-depth-trends.html").read_text()
    assert re.search(r"With \d+ blocks, the smallest slope each test detects", trends)
    assert "Student t on n_blocks − 2 degrees of freedom" in trends
    assert trends.count("data:video/mp4;base64,") == 3  # one per run
    dd = (out / "report-deduplication.html").read_text()
    assert re.search(r"the treatment differs from the reference <strong>", dd) and dd.count("data:video/mp4;base64,") == 1
    assert "equivalence test with margin m = " in dd and "Matched here: <code>raw-seed2</code>" in dd
    assert "judged against raw-seed2" in dd  # the verdict rows' detail column
    pub = (out / "report-pythia-published.html").read_text()
    assert "Traceback" not in pub and pub.count("data:image/png;base64,") >= 6
    assert re.search(r"Per size: \d+ consistent, \d+ inconsistent, \d+ undecided of 50 rows", pub)
    assert re.search(r"\d+ of 24 blocks show a phase shift", pub) and "No run of this build is one of the five" in pub
    assert "proxy undecided" in pub and "proxy" in index
    assert "Pythia, published max/std" in index  # the preface's claim-3 rows on real Pythia
    arch = (out / "report-residual-architectures.html").read_text()
    assert "Traceback" not in arch and arch.count("data:image/png;base64,") >= 3  # the three figures
    assert re.search(r"Over the \d+ compared claim parts and matrices, the wirings <strong>agree</strong> on", arch)
    assert "scipy.stats.nct" in arch and "sequential − parallel, 2 pairs" in arch and "holds alike" not in arch
    assert re.search(r"No difference survives Holm|Differences that survive the correction", arch)
    assert "<strong>6.</strong>" in index  # the preface's rows for the architecture comparison, one per claim
    assert all(f"claim {k}: the two wirings agree on its measures" in index for k in (1, 2, 3))
    assert re.search(r"\d+ agree / \d+ differ / \d+ undecided", index)
    init = (out / "report-init-spectrum.html").read_text()
    assert "Traceback" not in init and init.count("data:image/png;base64,") >= 2  # loss curves, shape
    assert re.search(r"Of the 6 initialisations drawn from the learned weights, \d+ train faster", init)
    assert "steps to the target" in init and "Welch df" in init and "times that seed spread" in init
    assert re.search(r"from the standard \(Gaussian\) init: non-Gaussian beyond noise at the last step</em>: \d+ of 8", init)
    assert "<strong>7.</strong>" in index and "trains faster than the standard init" in index
    audit = (out / "report-audit.html").read_text()
    assert "No step of the 18 audited is flagged" in audit
    assert re.search(r"\d+ of \d+ checks fail", audit) and "1.3b_attn_qkv_norm.npy" in audit
    for run in ("raw", "deduped", "raw-seed2"):
        (video,) = (figures / "weight-distribution").glob(f"sv-{run}-[0-9a-f]*.mp4")
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
        assert frames == 6  # one frame per checkpoint of the smoke suite


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [["raw-seed2"], []], ids=["replica-only", "reference-alone"])
def test_every_chapter_executes_without_a_treatment(replicas, smoke_preview, preview_cache, tmp_path, monkeypatch):
    """The crfm (replicas, no treatment) and olmo (reference alone) builds' shapes, on the
    smoke suite: every chapter runs, claim 4 is absent from the preface, and the
    deduplication chapter says why instead of failing."""
    import shutil

    import yaml

    root = tmp_path / "project"
    (root / "report").mkdir(parents=True)
    # every profile file: a chapter may read another profile's settings (pythia-published reads pythia's)
    for f in ("index.qmd", *(p.relative_to(ROOT) for p in [*ROOT.glob("_quarto*.yml"), *ROOT.glob("report/*.qmd")])):
        shutil.copy(ROOT / f, root / f)
    runs = {"reference": "raw", "treatment": None, "replicas": replicas}
    (root / "_quarto-alone.yml").write_text(yaml.safe_dump({"analysis": {"runs": runs}}))
    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(preview_cache))  # the smoke suite, trained once
    written = report.preview(root, profile="alone,smoke", out=tmp_path / "out")
    assert len(written) == len(smoke_preview[2])  # the same chapters as the full build
    pages = {p.name: p.read_text() for p in written}
    for name, html in pages.items():  # a failing cell stops preview; a caught one would print this
        assert "Traceback" not in html, name
    index, dd = pages["index.html"], pages["report-deduplication.html"]
    assert "<strong>4.</strong>" not in index and "<strong>1.</strong>" in index
    assert "declares no treatment run" in dd and "the treatment differs from the reference <strong>" not in dd
    # Reference against its replicas is still reported where there are replicas.
    assert ("agree between the reference and the replica in" in dd) == bool(replicas)


# Quarto itself (profiles, both formats, widths, the PDF): tests/test_quarto_book.py.

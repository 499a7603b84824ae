"""The book as Quarto renders it, on the smoke suite, in a copy of the project: profiles
really switch (Quarto's freezer does not key on them), each chapter executes once for both
formats, figures and videos fit the HTML column, and the PDF's tables and captions read.
Skipped where Quarto (or, for the width check, Chromium) is not installed."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from analysis import freezer, report

from .conftest import ROOT, fresh_cache

QUARTO = shutil.which("quarto")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(QUARTO is None, reason="quarto is not installed")]

# Every chapter and appendix the book lists, as paths without suffix: "index", "report/methods".
CHAPTERS = [p.relative_to(ROOT).with_suffix("").as_posix() for p in report.chapters(ROOT)]


def _project_copy(dest):
    """The working tree's tracked and new files (what a clone plus local edits holds), without
    rendered output or freezers, which the test makes itself."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if rel.startswith(("_freeze", "_book")) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _render(root, env, *args):
    done = subprocess.run([QUARTO, "render", *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _preface_profile(book):
    m = re.search(r"Settings profile: <strong>([^<]+)</strong>", (book / "index.html").read_text())
    return m and m.group(1)


@pytest.fixture(scope="module")
def book(corpus_cache, tmp_path_factory):
    """The smoke book rendered to HTML and PDF, then under a second profile, then the smoke
    profile again: (project root, environment, render logs by name)."""
    root = _project_copy(tmp_path_factory.mktemp("project"))
    cache = fresh_cache(corpus_cache, tmp_path_factory.mktemp("cache"))
    # PYTHONPATH: chapter kernels run in report/ and must import this copy's package.
    env = {**os.environ, "ANALYSIS_CACHE_DIR": str(cache), "PYTHONPATH": str(root), "QUARTO_PYTHON": sys.executable}
    for step in ("train-tiny", "compute"):  # as `make report` does: the render only reads the cache
        subprocess.run([sys.executable, "-m", "analysis", step, "--profile", "smoke"], cwd=root, env=env,
                       check=True, capture_output=True)
    gitignore = (root / ".gitignore").read_bytes()
    (root / "_quarto-alt.yml").write_text("analysis:\n  figures:\n    grid_steps: 3\n")
    logs, prefaces = {}, {}
    for name, args in (("smoke", ["--profile", "smoke"]), ("alt", ["--profile", "smoke,alt", "--to", "html"]),
                       ("smoke again", ["--profile", "smoke", "--to", "html"])):
        logs[name] = _render(root, env, *args)
        prefaces[name] = _preface_profile(root / "_book-smoke")  # smoke's output-dir: Quarto's first profile wins
        if name == "smoke":  # the HTML-only renders after it clear the book's folder
            (pdf,) = (root / "_book-smoke").glob("*.pdf")
            shutil.copy(pdf, root / "smoke-book.pdf")
    return root, gitignore, logs, prefaces


def test_each_profile_renders_its_own_results_never_another_profiles_frozen_ones(book):
    root, _, logs, prefaces = book
    assert prefaces["smoke"] == "smoke"
    # With smoke's results frozen, Quarto alone would reuse them here and say "smoke".
    assert prefaces["alt"] == "smoke+alt"
    assert logs["alt"].count("Executing '") == len(CHAPTERS)
    # A profile's own freezer comes back for its next render: nothing executes, same preface.
    assert "Executing '" not in logs["smoke again"] and prefaces["smoke again"] == "smoke"
    # Between renders _freeze/ is the default build's (here: none yet); the others are aside,
    # each stamped with its profile and the hash of every chapter's frozen result.
    assert not (root / "_freeze").exists() and not (root / "_freeze.lock").exists()
    for tag in ("smoke", "smoke+alt"):
        stamp = freezer.read_stamp(root / f"_freeze-{tag}")
        assert stamp["profile"] == tag
        assert {e.split("/execute-results/")[0] for e in stamp["entries"]} == set(CHAPTERS)
    assert not list(root.rglob(".jupyter_cache"))  # the cache served one render only


def test_the_preface_describes_the_suite_of_the_profile(book):
    html = (book[0] / "_book-smoke" / "index.html").read_text()
    assert "default suite" not in html
    assert "4 blocks of width 32, 16 AdamW steps" in html  # _quarto-smoke.yml's tiny settings


def test_each_chapter_executes_once_for_html_and_pdf(book):
    log = book[2]["smoke"]
    for chapter in CHAPTERS:
        assert log.count(f"Executing '{chapter.split('/')[-1]}.quarto_ipynb'") == 1, chapter
    assert log.count("(Notebook read from cache)") == len(CHAPTERS)  # the second format's run


def test_a_render_leaves_gitignore_as_the_clone_has_it(book):
    root, gitignore = book[:2]
    assert (root / ".gitignore").read_bytes() == gitignore


def test_math_needs_no_script_or_network(book):
    html = (book[0] / "_book-smoke" / "report" / "residual-paths.html").read_text()
    assert "<math" in html and "mathjax" not in html.lower() and "katex" not in html.lower()


# Appended to a copy of each page: every image's and video's rendered box against its
# parent's, every table's against the text column's (main), each against the viewport, and its
# natural width.
MEASURE = """
<script>
window.addEventListener('load', () => setTimeout(() => {
  const rows = [...document.querySelectorAll('main img, main video, main table')].map(el => {
    const box = el.tagName === 'TABLE' ? el.closest('main') : el.parentElement;
    const r = el.getBoundingClientRect(), p = box.getBoundingClientRect();
    return [el.tagName, r.left, r.right, p.left, p.right, el.naturalWidth || el.videoWidth || 0].join(' ');
  });
  const d = document.createElement('pre');
  d.id = 'widths';
  d.textContent = [document.documentElement.clientWidth, ...rows].join('\\n');
  document.body.appendChild(d);
}, 300));
</script>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
@pytest.mark.parametrize("window", [1400, 800])
def test_no_figure_video_or_table_is_wider_than_its_column(book, tmp_path, window):
    out = book[0] / "_book-smoke"
    scaled = 0
    for chapter in CHAPTERS:
        page = out / f"{chapter}.html"
        checked = page.with_name(f"measured-{page.name}")
        checked.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
        run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                              f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={window},1000",
                              "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()],
                             capture_output=True, text=True, timeout=180)
        checked.unlink()
        m = re.search(r'<pre id="widths">(.*?)</pre>', run.stdout, re.S)
        assert m, f"{chapter}: the measurement did not run ({run.stderr[-300:]})"
        viewport, *rows = m.group(1).split("\n")
        for row in filter(None, rows):
            tag, left, right, p_left, p_right, natural = row.split()
            left, right, p_left, p_right, natural = map(float, (left, right, p_left, p_right, natural))
            assert left >= p_left - 1 and right <= p_right + 1, f"{chapter}: {tag} overflows its column: {row}"
            assert right <= float(viewport) + 1, f"{chapter}: {tag} runs off the page: {row}"
            scaled += natural > right - left + 1
    assert scaled > 0  # some figure is wider than the column by nature: the check has something to catch


def _pdf(book):
    return book[0] / "smoke-book.pdf"


def overprinted(page, share: float = 0.3) -> list:
    """Glyphs printed over their neighbour on the same line (pdfplumber chars): what columns
    too narrow for their words, or a table run over the footer, look like in a PDF."""
    lines = {}
    for c in page.chars:
        if c["text"].isalnum():  # punctuation kerns into letters ("V," "."”) by design
            lines.setdefault(round(c["top"] / 2), []).append(c)
    hits = []
    for key, line in lines.items():
        near = sorted(line + lines.get(key + 1, []), key=lambda c: c["x0"])
        for a, b in zip(near, near[1:]):
            width = min(a["x1"] - a["x0"], b["x1"] - b["x0"])
            high = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
            if width > 0 and a["x1"] - b["x0"] > share * width and high > 0.5 * min(a["bottom"] - a["top"],
                                                                                      b["bottom"] - b["top"]):
                hits.append(f"{a['text']}{b['text']} at ({a['x0']:.0f}, {a['top']:.0f})")
    return hits


def test_pdf_prints_no_text_over_text(book):
    pdfplumber = pytest.importorskip("pdfplumber")
    with pdfplumber.open(_pdf(book)) as pdf:
        hits = {i + 1: overprinted(p) for i, p in enumerate(pdf.pages)}
    assert not {k: v[:5] for k, v in hits.items() if v}


def test_pdf_table_headers_are_whole_words(book):
    pdfplumber = pytest.importorskip("pdfplumber")
    from analysis.plots import tables

    with pdfplumber.open(_pdf(book)) as pdf:
        words = {w["text"] for p in pdf.pages for w in p.extract_words()}
    for head in ("effect [interval]", "noise band", "resolution", "verdict", "rows: holds / does not / undecided",
                 tables.label("content_hash")):
        for word in head.split():
            assert word in words, f"table header {head!r}: {word!r} is not a whole word in the PDF"


def test_pdf_figures_have_captions_and_no_orphan_panels(book):
    pdfplumber = pytest.importorskip("pdfplumber")
    with pdfplumber.open(_pdf(book)) as pdf:
        text = "\n".join(p.extract_text() or "" for p in pdf.pages)
    captions = re.findall(r"Figure \d+\.\d+:(.*)", text)
    assert captions and all(c.strip() for c in captions)
    assert not re.search(r"^\s*\(a\) ", text, re.M)  # a sub-caption: a cell showed several figures under one label

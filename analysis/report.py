"""Render the book: `quarto render` when Quarto is installed, else execute every chapter
through a Jupyter kernel and write one HTML preview per chapter.

Quarto runs chapter cells in a Jupyter kernel in the chapter's folder, with QUARTO_PROFILE
set; the preview path does the same, so both see the same settings and caches.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbclient import NotebookClient
from nbconvert import HTMLExporter

PREVIEW_DIR = "_preview"
NO_QUARTO = (
    "Quarto is not installed: executed every chapter through Jupyter and wrote HTML previews "
    "to {out}. The book layout, cross-references, bibliography and PDF need Quarto "
    "(https://quarto.org, or `pixi run report`)."
)


def chapters(root: Path, profile: str | None = None) -> list[Path]:
    """Chapter files listed under book.chapters in _quarto.yml (parts flattened), in order,
    then those of each active profile (`profile`, comma-separated): Quarto appends a
    profile's lists to the project's."""
    from .config import active_profiles

    files = [root / "_quarto.yml"] + [root / f"_quarto-{p}.yml" for p in active_profiles(profile or "")]
    books = [(yaml.safe_load(f.read_text()) or {}).get("book") or {} for f in files if f.is_file()]

    def flat(items):
        for item in items or []:
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                if "href" in item or "file" in item:
                    yield item.get("href") or item.get("file")
                yield from flat(item.get("chapters"))

    listed = [c for key in ("chapters", "appendices") for book in books for c in flat(book.get(key))]
    return [root / c for c in dict.fromkeys(listed)]


def read_chapter(path: Path) -> nbformat.NotebookNode:
    """A .qmd as a notebook: jupytext's R Markdown reader takes ```{python} chunks as code cells."""
    return jupytext.reads(path.read_text(), fmt="Rmd")


def _plain_markdown(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop Quarto-only markup the preview cannot interpret: fenced-div lines (`:::`) and
    heading attributes (`{#sec-x}`). Both formats' content is then shown."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = [ln for ln in cell.source.splitlines() if not ln.lstrip().startswith(":::")]
            cell.source = re.sub(r"[ \t]*\{[#.][^}]*\}[ \t]*$", "", "\n".join(lines), flags=re.M)
    return nb


def execute_chapter(path: Path, profile: str | None = None, timeout: int = 3600) -> nbformat.NotebookNode:
    nb = read_chapter(path)
    # What Quarto's own kernel set-up does first: figures returned by cells render as images.
    nb.cells.insert(0, nbformat.v4.new_code_cell("%matplotlib inline"))
    env_before = os.environ.get("QUARTO_PROFILE")
    if profile is not None:
        os.environ["QUARTO_PROFILE"] = profile  # the kernel inherits it, as under Quarto
    try:
        client = NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        if profile is not None:
            os.environ.pop("QUARTO_PROFILE") if env_before is None else os.environ.update(QUARTO_PROFILE=env_before)
    return nb


def preview(root: Path, profile: str | None = None, out: Path | None = None) -> list[Path]:
    """Execute every chapter and write <out>/<chapter>.html; returns the written paths."""
    out = Path(out or root / PREVIEW_DIR)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    written = []
    for path in chapters(root, profile):
        print(f"executing {path.relative_to(root)}", flush=True)
        nb = execute_chapter(path, profile)
        html, _ = exporter.from_notebook_node(_plain_markdown(nb))
        target = out / (path.relative_to(root).with_suffix(".html").as_posix().replace("/", "-"))
        target.write_text(html)
        written.append(target)
    return written


def render(root: Path, profile: str | None = None) -> int:
    """The report command: Quarto when available, else the Jupyter preview."""
    quarto = shutil.which("quarto")
    if quarto:
        cmd = [quarto, "render"] + (["--profile", profile] if profile else [])
        # Chapter kernels must be this interpreter's: the one with the analysis package.
        env = dict(os.environ, QUARTO_PYTHON=sys.executable)
        return subprocess.call(cmd, cwd=root, env=env)
    written = preview(root, profile)
    print(NO_QUARTO.format(out=written[0].parent if written else root / PREVIEW_DIR))
    for p in written:
        print(f"  {p}")
    return 0

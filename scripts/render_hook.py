"""Quarto's pre- and post-render hook (_quarto.yml, project: pre-render / post-render).

pre:  take `_freeze.lock`, make `_freeze/` the active profile's freezer holding only entries
      its stamp vouches for under the active settings, and clear the Jupyter cache;
post: stamp what the render froze, put the default build's freezer back, clear the Jupyter
      cache and drop the lock.
Why: analysis/freezer.py. Runs under Quarto's Python (QUARTO_PYTHON), which must be the
project's (Python >= 3.10 with the package's dependencies): the stamp reads the settings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import freezer  # noqa: E402


def active_key(tag: str) -> dict:
    """The stamp key of this render: its profile, the resolved `analysis:` settings that change
    what a chapter shows (results.NOT_RESULTS but `figures`, which a frozen chapter's figures
    show) and the tables' versions. Code edits are not in it: see the README, "Publish"."""
    from analysis import config, results

    cfg = config.load(root=ROOT)  # $QUARTO_PROFILE, as the chapters' kernels read it
    settings = {k: v for k, v in cfg.items() if k not in results.NOT_RESULTS or k == "figures"}
    versions = {"tables": results.TABLES_VERSION, **{f"table:{k}": v for k, v in results.TABLE_VERSIONS.items()}}
    return freezer.stamp_key(tag, settings, versions)


def main(stage: str) -> None:
    if stage not in ("pre", "post"):
        raise SystemExit(f"render_hook.py: expected 'pre' or 'post', got {stage!r}")
    tag, quarto = freezer.profile_tag(), os.getppid()  # the hook's parent: the Quarto render
    try:  # the stamp needs the package (settings, tables version): the project's Python
        if sys.version_info < (3, 10):
            raise ImportError(f"Python {sys.version.split()[0]} is older than the package's 3.10")
        from analysis import config, results  # noqa: F401  (active_key's)
        from analysis.errors import AnalysisError
    except ImportError as e:
        print(f"render_hook ({stage}): cannot import the analysis package ({e}); "
              f"run Quarto with QUARTO_PYTHON set to the project's Python (.venv/bin/python)", file=sys.stderr)
        raise SystemExit(1)
    try:  # a known failure is one line; the lock stays with this render (stale once it exits)
        key = active_key(tag)
        if stage == "pre":
            freezer.lock(ROOT, quarto)
            done = freezer.prepare(ROOT, key)
        else:
            done = freezer.finish(ROOT, key)
        freezer.clear_jupyter_cache(ROOT)
    except (RuntimeError, AnalysisError) as e:  # freezer.LockHeld is a RuntimeError
        print(f"render_hook ({stage}, profile {tag}): {e}", file=sys.stderr)
        raise SystemExit(1)
    if stage == "post":
        freezer.unlock(ROOT, quarto)
    if stage == "pre" or tag != freezer.DEFAULT:
        print(f"render_hook ({stage}, profile {tag}): {done}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

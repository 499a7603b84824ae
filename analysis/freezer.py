"""One Quarto freezer per settings profile, and a Jupyter cache that lives for one render.

Quarto keeps frozen chapter results in `_freeze/` keyed by the chapter's source text and
the output format only, never by profile: with the default build's `_freeze/` present,
`quarto render --profile smoke` reuses the default results and executes nothing. So the
render hooks in `_quarto.yml` (scripts/render_hook.py) swap freezers: `_freeze/` always
belongs to the profile named in `_freeze/PROFILE` (no file: the default build); before a
render it is put aside as `_freeze-<owner>/` and the active profile's own freezer (if
any) takes its place; after a profile render the default build's is put back, so the
committed `_freeze/` is what a working tree holds between renders. A render that dies
half-way leaves the swap undone; the next render's hook finds the owner in PROFILE and
swaps again, so a freezer never serves another profile.

Every chapter is rendered to HTML and Typst; `execute: cache: true` lets the second format
take the first one's executed notebook from jupyter-cache instead of running it again.
That cache keys on the code only (not on settings or the results cache), so the hooks
delete it before and after every render: it serves one render, never the next.
Standard library only: the hooks run under Quarto's Python before any kernel starts.
"""

import os
import shutil
from pathlib import Path

FREEZER = "_freeze"
OWNER_FILE = "PROFILE"
DEFAULT = "default"
JUPYTER_CACHE = ".jupyter_cache"  # jupyter-cache's folder, created in each chapter's folder


def profile_tag(raw: str | None = None) -> str:
    """QUARTO_PROFILE ('smoke', 'a,b', '') as a folder tag: 'smoke', 'a+b', 'default'."""
    raw = os.environ.get("QUARTO_PROFILE", "") if raw is None else raw
    return "+".join(p.strip() for p in raw.split(",") if p.strip()) or DEFAULT


def owner(root: Path) -> str | None:
    """The profile whose results `_freeze/` holds (None: no `_freeze/`)."""
    folder = Path(root) / FREEZER
    if not folder.is_dir():
        return None
    stamp = folder / OWNER_FILE
    return stamp.read_text().strip() if stamp.is_file() else DEFAULT


def use(root: Path, tag: str) -> str:
    """Make `_freeze/` the freezer of profile `tag`, putting the present one aside as
    `_freeze-<owner>/`. Returns what was done, for the render log."""
    root = Path(root)
    current, live = owner(root), root / FREEZER
    if current == tag:
        return f"{FREEZER}/ holds profile {tag}"
    if current is not None:
        aside = root / f"{FREEZER}-{current}"
        if aside.exists():
            raise RuntimeError(f"cannot put {live} (profile {current}) aside: {aside} exists; "
                               f"remove the stale one of the two")
        live.rename(aside)
    mine = root / f"{FREEZER}-{tag}"
    if mine.is_dir():
        mine.rename(live)
        done = f"{FREEZER}/ now holds profile {tag}'s results (from {mine.name}/)"
    else:
        live.mkdir()
        done = f"{FREEZER}/ is new and empty for profile {tag}: every chapter executes"
    if tag != DEFAULT:
        (live / OWNER_FILE).write_text(tag + "\n")
    return done + ("" if current in (None, tag) else f"; profile {current}'s is in {FREEZER}-{current}/")


def clear_jupyter_cache(root: Path) -> list[Path]:
    """Delete jupyter-cache's folders: beside chapters in the project folder or one below it."""
    root = Path(root)
    folders = [root, *(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))]
    gone = [d / JUPYTER_CACHE for d in folders if (d / JUPYTER_CACHE).is_dir()]
    for cache in gone:
        shutil.rmtree(cache)
    return gone

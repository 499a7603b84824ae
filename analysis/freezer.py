"""One Quarto freezer per settings profile, trusted only entry by entry, and a Jupyter cache
that lives for one render.

Quarto keeps frozen chapter results in `_freeze/` keyed by the chapter's source text and
the output format only, never by profile or by the `analysis:` settings: with the default
build's `_freeze/` present, `quarto render --profile smoke` reuses the default results and
executes nothing, and so does a render after `block: first` is set. So the render hooks in
`_quarto.yml` (scripts/render_hook.py) keep a stamp in each freezer, `_freeze/STAMP.json`:
the profile, a digest of the settings that change what a chapter shows, the tables' version,
and the sha256 of every `execute-results/*.json` that a finished render wrote.

pre:  take `_freeze.lock`; put the present `_freeze/` aside as `_freeze-<its profile>/` and
      bring the active profile's back; empty it if its stamp's settings are not the active
      ones; delete every chapter entry the stamp does not list with that hash (written by a
      render that died, or restored by git under another stamp): those chapters execute.
post: stamp what the render froze, put the default build's freezer back, drop the lock.

Quarto runs no post-render hook after an error, so a dead render leaves its freezer live with
the stamp the pre hook wrote (its verified entries only) and a stale lock that the next
render takes over. Every chapter is rendered to HTML and Typst; `execute: cache: true` lets
the second format take the first one's executed notebook from jupyter-cache, which keys on
the code only, so the hooks delete it before and after every render.
Standard library only: the hooks run under Quarto's Python before any kernel starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

FREEZER = "_freeze"
STAMP = "STAMP.json"
LOCK = "_freeze.lock"
DEFAULT = "default"
JUPYTER_CACHE = ".jupyter_cache"  # jupyter-cache's folder, created in each chapter's folder
SKIP = {".venv", ".cache", ".git", "node_modules"}  # never searched for jupyter caches


class LockHeld(RuntimeError):
    pass


def profile_tag(raw: str | None = None) -> str:
    """QUARTO_PROFILE ('smoke', 'a,b', '') as a folder tag: 'smoke', 'a+b', 'default'."""
    raw = os.environ.get("QUARTO_PROFILE", "") if raw is None else raw
    return "+".join(p.strip() for p in raw.split(",") if p.strip()) or DEFAULT


def stamp_key(tag: str, settings: dict, versions: dict) -> dict:
    """What a freezer's results depend on besides the chapter source: the profile, a digest of
    the settings (JSON, sorted keys) and the tables' versions."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return {"profile": tag, "settings": hashlib.sha256(text.encode()).hexdigest(), "versions": versions}


def read_stamp(folder: Path) -> dict:
    """A freezer's stamp; a freezer without one (or with an unreadable one) is the default
    build's with no trusted entry, so everything in it executes again."""
    try:
        stamp = json.loads((Path(folder) / STAMP).read_text())
        if isinstance(stamp, dict) and isinstance(stamp.get("entries"), dict):
            return stamp
    except (OSError, ValueError):
        pass
    return {"profile": DEFAULT, "entries": {}}


def owner(root: Path) -> str | None:
    """The profile whose results `_freeze/` holds (None: no `_freeze/`)."""
    folder = Path(root) / FREEZER
    return read_stamp(folder).get("profile", DEFAULT) if folder.is_dir() else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _frozen(folder: Path) -> list[Path]:
    """Quarto's frozen results: <chapter>/execute-results/<format>.json."""
    return sorted(folder.rglob("execute-results/*.json"))


def write_stamp(folder: Path, key: dict) -> dict:
    """Stamp `folder` with `key` and the sha256 of every frozen result it holds now."""
    folder = Path(folder)
    entries = {p.relative_to(folder).as_posix(): _sha256(p) for p in _frozen(folder)}
    stamp = {**key, "entries": entries}
    tmp = folder / f".{STAMP}.tmp"
    tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / STAMP)
    return stamp


def _swap(root: Path, tag: str, create: bool) -> str:
    """Make `_freeze/` the freezer of profile `tag`, putting the present one aside as
    `_freeze-<owner>/`. create=False: leave no `_freeze/` if `tag` has none."""
    current, live = owner(root), root / FREEZER
    if current == tag:
        return f"{FREEZER}/ holds profile {tag}"
    if current is not None:
        aside = root / f"{FREEZER}-{current}"
        if not aside.exists():
            live.rename(aside)
        elif read_stamp(aside) == read_stamp(live) and "settings" in read_stamp(live):
            # the same stamp (git restored the committed freezer over a dead render's): the
            # aside one holds all it vouches for; the live one may hold unvouched leftovers
            shutil.rmtree(live)
        else:
            raise RuntimeError(f"cannot put {live} (profile {current}) aside: {aside} exists with "
                               f"another stamp; remove the stale one of the two")
    mine = root / f"{FREEZER}-{tag}"
    if mine.is_dir():
        mine.rename(live)
        done = f"{FREEZER}/ now holds profile {tag}'s results (from {mine.name}/)"
    elif create:
        live.mkdir()
        done = f"{FREEZER}/ is new and empty for profile {tag}: every chapter executes"
    else:
        done = f"profile {tag} has no freezer: none is live"
    return done + ("" if current in (None, tag) else f"; profile {current}'s is in {FREEZER}-{current}/")


def prepare(root: Path, key: dict) -> str:
    """Pre-render: `_freeze/` becomes the freezer of key's profile holding only the entries its
    stamp vouches for under `key`; the stamp is rewritten to list just those."""
    root, tag = Path(root), key["profile"]
    done = [_swap(root, tag, create=True)]
    live = root / FREEZER
    stamp = read_stamp(live)
    if {k: stamp.get(k) for k in key} != key:
        held = any(live.iterdir())
        shutil.rmtree(live)
        live.mkdir()
        if held:
                done.append("its stamp is not the active settings' (analysis settings or tables version "
                        "changed, or none): emptied, every chapter executes")
    else:
        listed = stamp["entries"]
        stale = {p.parent.parent for p in _frozen(live)
                 if listed.get(p.relative_to(live).as_posix()) != _sha256(p)}
        for chapter in sorted(stale):
            shutil.rmtree(chapter, ignore_errors=True)
        if stale:
            done.append(f"{len(stale)} entries its stamp does not vouch for deleted (they execute): "
                        + ", ".join(c.relative_to(live).as_posix() for c in sorted(stale)))
    write_stamp(live, key)
    return "; ".join(done)


def finish(root: Path, key: dict) -> str:
    """Post-render (the render succeeded): stamp what it froze, put the default build's
    freezer back."""
    root = Path(root)
    if (root / FREEZER).is_dir():
        write_stamp(root / FREEZER, key)
    return _swap(root, DEFAULT, create=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock(root: Path, pid: int) -> str:
    """Take `_freeze.lock` for the render process `pid` (O_EXCL). Raises LockHeld while another
    live process holds it; takes over one whose process is gone (a render that died)."""
    path = Path(root) / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder == pid:
                return f"{LOCK} already held by this render ({pid})"
            if holder and _alive(holder):
                raise LockHeld(f"another Quarto render (process {holder}) is using {path.parent / FREEZER}; "
                               f"wait for it, or delete {path} if that process is not a render") from None
            path.unlink(missing_ok=True)  # stale: its render died before post-render
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{pid}\n")
        return f"{LOCK} taken by {pid}"
    raise LockHeld(f"another render took {path} while this one was taking over a stale lock")


def unlock(root: Path, pid: int) -> None:
    """Drop `_freeze.lock` if `pid` holds it."""
    path = Path(root) / LOCK
    try:
        if int(path.read_text().strip() or 0) == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def clear_jupyter_cache(root: Path, env: dict | None = None) -> list[Path]:
    """Delete jupyter-cache's folders anywhere in the project (but .venv, .cache, ...), under
    $JUPYTERCACHE's name where set (Quarto's notebook.py reads it, relative to the chapter's
    folder). An absolute $JUPYTERCACHE is deleted only if it holds jupyter-cache's global.db."""
    root, env = Path(root), os.environ if env is None else env
    name = env.get("JUPYTERCACHE") or JUPYTER_CACHE
    gone = []
    if os.path.isabs(name):
        cache = Path(name)
        if cache.is_dir():
            if not (cache / "global.db").is_file():
                raise RuntimeError(f"$JUPYTERCACHE={name} is not a jupyter-cache folder (no global.db); "
                                   f"refusing to delete it: unset JUPYTERCACHE or point it at the cache")
            gone.append(cache)
    else:
        for folder, dirs, _ in os.walk(root):
            cache = Path(folder) / name
            if cache.is_dir() and (name == JUPYTER_CACHE or (cache / "global.db").is_file()):
                gone.append(cache)
            dirs[:] = [d for d in dirs if d not in SKIP and d != Path(name).parts[0]
                       and not d.startswith((".", "_book", FREEZER))]
    for cache in gone:
        shutil.rmtree(cache)
    return gone

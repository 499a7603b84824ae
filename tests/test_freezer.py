"""Quarto's freezer kept per profile and settings, trusted entry by entry (analysis/freezer.py),
and the render hooks' lock, without Quarto: plain files in a temporary folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import freezer

ROOT = Path(__file__).resolve().parent.parent
SMOKE = freezer.stamp_key("smoke", {"block": "middle"}, {"tables": 8})
DEFAULT = freezer.stamp_key("default", {"block": "middle"}, {"tables": 8})


def _frozen(root, name, text, fmt="html"):
    f = root / "_freeze" / name / "execute-results" / f"{fmt}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)


def _read(root, name, fmt="html"):
    f = root / "_freeze" / name / "execute-results" / f"{fmt}.json"
    return f.read_text() if f.is_file() else None


def _default_build(root, text="default results"):
    """The committed freezer: what a finished default render leaves."""
    freezer.prepare(root, DEFAULT)
    _frozen(root, "index", text)
    _frozen(root, "report/methods", "default methods")
    freezer.finish(root, DEFAULT)


def test_profile_tag_joins_quarto_profiles():
    assert freezer.profile_tag("") == "default"
    assert freezer.profile_tag("smoke") == "smoke"
    assert freezer.profile_tag(" smoke, pythia ") == "smoke+pythia"


def test_a_profile_never_sees_the_default_build_frozen_results(tmp_path):
    _default_build(tmp_path)
    freezer.prepare(tmp_path, SMOKE)
    assert _read(tmp_path, "index") is None  # smoke starts empty: every chapter executes
    assert freezer.owner(tmp_path) == "smoke"
    assert (tmp_path / "_freeze-default" / "index" / "execute-results" / "html.json").read_text() == "default results"
    _frozen(tmp_path, "index", "smoke results")  # what the smoke render froze
    freezer.finish(tmp_path, SMOKE)  # post-render: the default build's freezer is back
    assert _read(tmp_path, "index") == "default results" and freezer.owner(tmp_path) == "default"
    freezer.prepare(tmp_path, SMOKE)  # the next smoke render gets its own results back
    assert _read(tmp_path, "index") == "smoke results"


@pytest.mark.parametrize("changed", [
    freezer.stamp_key("smoke", {"block": "first"}, {"tables": 8}),  # `block: first` in _quarto-smoke.yml
    freezer.stamp_key("smoke", {"block": "middle"}, {"tables": 9}),  # TABLES_VERSION bumped
])
def test_a_freezer_stamped_under_other_settings_is_emptied(tmp_path, changed):
    freezer.prepare(tmp_path, SMOKE)
    _frozen(tmp_path, "index", "smoke results")
    freezer.finish(tmp_path, SMOKE)
    freezer.prepare(tmp_path, changed)
    assert _read(tmp_path, "index") is None  # executes again under the new settings
    assert freezer.read_stamp(tmp_path / "_freeze")["settings"] == changed["settings"]


def test_the_default_freezer_is_emptied_when_quarto_yml_settings_change(tmp_path):
    _default_build(tmp_path)
    freezer.prepare(tmp_path, DEFAULT)  # unchanged: everything thaws
    assert _read(tmp_path, "index") == "default results"
    freezer.finish(tmp_path, DEFAULT)
    freezer.prepare(tmp_path, freezer.stamp_key("default", {"block": 0}, {"tables": 8}))
    assert _read(tmp_path, "index") is None and _read(tmp_path, "report/methods") is None


def test_an_unstamped_freezer_is_not_trusted(tmp_path):
    _frozen(tmp_path, "index", "results of unknown settings")  # a freezer from before stamps
    freezer.prepare(tmp_path, DEFAULT)
    assert _read(tmp_path, "index") is None


def test_entries_a_dead_render_wrote_are_deleted(tmp_path):
    freezer.prepare(tmp_path, SMOKE)
    _frozen(tmp_path, "index", "smoke results")
    _frozen(tmp_path, "report/methods", "smoke methods")
    freezer.finish(tmp_path, SMOKE)
    freezer.prepare(tmp_path, SMOKE)
    _frozen(tmp_path, "index", "half-done results")  # ... and the render died: no post-render
    _frozen(tmp_path, "report/audit", "half-done audit")
    freezer.prepare(tmp_path, SMOKE)
    assert _read(tmp_path, "index") is None and _read(tmp_path, "report/audit") is None
    assert _read(tmp_path, "report/methods") == "smoke methods"  # vouched for: thaws


def _git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


def test_a_dead_profile_render_then_git_checkout_never_thaws_another_profiles_results(tmp_path):
    _default_build(tmp_path)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "_freeze")
    _git(tmp_path, "commit", "-qm", "published freezer")
    freezer.prepare(tmp_path, SMOKE)  # a smoke render ...
    _frozen(tmp_path, "index", "smoke results")
    _frozen(tmp_path, "report/extra", "smoke extra")  # untracked: survives the checkout
    # ... dies (no post-render); the user restores the committed freezer
    _git(tmp_path, "checkout", "--", "_freeze")
    assert _read(tmp_path, "index") == "default results"
    freezer.prepare(tmp_path, SMOKE)  # the next smoke render
    assert _read(tmp_path, "index") is None and _read(tmp_path, "report/extra") is None
    _frozen(tmp_path, "index", "smoke results")
    freezer.finish(tmp_path, SMOKE)
    assert _read(tmp_path, "index") == "default results"
    assert _read(tmp_path, "report/extra") is None  # the dead render's leftovers went with it
    freezer.prepare(tmp_path, DEFAULT)
    assert _read(tmp_path, "index") == "default results" and _read(tmp_path, "report/methods") == "default methods"


def test_git_checkout_then_a_default_render_keeps_only_vouched_entries(tmp_path):
    _default_build(tmp_path)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "_freeze")
    _git(tmp_path, "commit", "-qm", "published freezer")
    freezer.prepare(tmp_path, SMOKE)
    _frozen(tmp_path, "report/extra", "smoke extra")
    _git(tmp_path, "checkout", "--", "_freeze")
    shutil.rmtree(tmp_path / "_freeze-default")  # the user also cleaned up the aside copy
    freezer.prepare(tmp_path, DEFAULT)
    assert _read(tmp_path, "report/extra") is None and _read(tmp_path, "index") == "default results"


def test_an_aside_freezer_with_another_stamp_is_an_error_not_overwritten(tmp_path):
    _default_build(tmp_path)
    (tmp_path / "_freeze-default").mkdir()
    with pytest.raises(RuntimeError, match="_freeze-default exists"):
        freezer.prepare(tmp_path, SMOKE)
    assert _read(tmp_path, "index") == "default results"


def test_post_render_without_a_default_freezer_leaves_none(tmp_path):
    freezer.prepare(tmp_path, SMOKE)  # a clone with no committed _freeze/
    _frozen(tmp_path, "index", "smoke results")
    done = freezer.finish(tmp_path, SMOKE)
    assert not (tmp_path / "_freeze").exists() and "new and empty" not in done
    assert freezer.read_stamp(tmp_path / "_freeze-smoke")["entries"] == {
        "index/execute-results/html.json": freezer._sha256(tmp_path / "_freeze-smoke/index/execute-results/html.json")}


def test_a_live_render_holds_the_lock_a_dead_ones_is_taken_over(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        freezer.lock(tmp_path, other.pid)
        with pytest.raises(freezer.LockHeld, match=f"process {other.pid}"):
            freezer.lock(tmp_path, os.getpid())
        freezer.unlock(tmp_path, os.getpid())  # not ours: stays
        assert (tmp_path / "_freeze.lock").read_text().strip() == str(other.pid)
    finally:
        other.kill()
        other.wait()
    freezer.lock(tmp_path, os.getpid())  # its render died: stale
    assert (tmp_path / "_freeze.lock").read_text().strip() == str(os.getpid())
    freezer.unlock(tmp_path, os.getpid())
    assert not (tmp_path / "_freeze.lock").exists()


def _hook_project(dest):
    """The hook, the package and the settings files: what the hook reads."""
    shutil.copytree(ROOT / "analysis", dest / "analysis", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "render_hook.py", dest / "scripts")
    for f in ROOT.glob("_quarto*.yml"):
        shutil.copy(f, dest)
    return dest


def _hook(root, stage, profile="smoke"):
    env = {**os.environ, "QUARTO_PROFILE": profile, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, str(root / "scripts" / "render_hook.py"), stage], cwd=root, env=env,
                          capture_output=True, text=True)


def test_the_hooks_refuse_a_second_render_and_stamp_the_settings(tmp_path):
    root = _hook_project(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (root / "_freeze.lock").write_text(f"{other.pid}\n")
        done = _hook(root, "pre")
        assert done.returncode == 1 and not (root / "_freeze").exists()
        assert len(done.stderr.strip().splitlines()) == 1 and "another Quarto render" in done.stderr
    finally:
        other.kill()
        other.wait()
    assert _hook(root, "pre").returncode == 0  # stale lock taken over
    _frozen(root, "index", "smoke results")
    assert _hook(root, "post").returncode == 0
    assert not (root / "_freeze.lock").exists()
    before = freezer.read_stamp(root / "_freeze-smoke")
    assert list(before["entries"]) == ["index/execute-results/html.json"]
    smoke = root / "_quarto-smoke.yml"
    smoke.write_text(smoke.read_text().replace("analysis:\n", "analysis:\n  block: 0\n", 1))  # a settings edit
    assert _hook(root, "pre").returncode == 0
    assert _read(root, "index") is None
    assert json.loads((root / "_freeze" / "STAMP.json").read_text())["settings"] != before["settings"]


def test_jupyter_cache_is_cleared_beside_every_chapter(tmp_path):
    for d in (tmp_path, tmp_path / "report", tmp_path / "report" / "deep"):
        (d / ".jupyter_cache" / "executed").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / ".jupyter_cache").mkdir(parents=True)  # not the project's
    gone = freezer.clear_jupyter_cache(tmp_path, env={})
    assert len(gone) == 3 and not any(p.exists() for p in gone)
    assert (tmp_path / ".venv" / "lib" / ".jupyter_cache").is_dir()


def test_jupyter_cache_under_jupytercache_is_cleared_and_a_non_cache_refused(tmp_path):
    cache = tmp_path / "elsewhere"
    cache.mkdir()
    with pytest.raises(RuntimeError, match="not a jupyter-cache folder"):
        freezer.clear_jupyter_cache(tmp_path / "project", env={"JUPYTERCACHE": str(cache)})
    (cache / "global.db").write_text("")
    assert freezer.clear_jupyter_cache(tmp_path, env={"JUPYTERCACHE": str(cache)}) == [cache]
    assert not cache.exists()
    (tmp_path / "report" / "jc").mkdir(parents=True)
    (tmp_path / "report" / "jc" / "global.db").write_text("")
    assert freezer.clear_jupyter_cache(tmp_path, env={"JUPYTERCACHE": "jc"}) == [tmp_path / "report" / "jc"]


def test_a_settings_error_is_one_line_and_takes_no_lock(tmp_path):
    root = _hook_project(tmp_path)
    smoke = root / "_quarto-smoke.yml"
    smoke.write_text(smoke.read_text().replace("analysis:\n", "analysis:\n  block: first\n", 1))
    done = _hook(root, "pre")
    assert done.returncode == 1 and "analysis.block" in done.stderr and "Traceback" not in done.stderr
    assert not (root / "_freeze.lock").exists() and not (root / "_freeze").exists()

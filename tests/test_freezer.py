"""Quarto's freezer swapped per profile (analysis/freezer.py), without Quarto."""

import pytest

from analysis import freezer


def _frozen(root, name, text):
    f = root / "_freeze" / name / "execute-results" / "html.json"
    f.parent.mkdir(parents=True)
    f.write_text(text)


def _read(root, name):
    return (root / "_freeze" / name / "execute-results" / "html.json").read_text()


def test_profile_tag_joins_quarto_profiles():
    assert freezer.profile_tag("") == "default"
    assert freezer.profile_tag("smoke") == "smoke"
    assert freezer.profile_tag(" smoke, pythia ") == "smoke+pythia"


def test_a_profile_never_sees_the_default_build_frozen_results(tmp_path):
    _frozen(tmp_path, "index", "default results")  # the committed freezer: no PROFILE file
    freezer.use(tmp_path, "smoke")
    assert not (tmp_path / "_freeze" / "index").exists()  # smoke starts empty: every chapter executes
    assert freezer.owner(tmp_path) == "smoke"
    assert (tmp_path / "_freeze-default" / "index" / "execute-results" / "html.json").read_text() == "default results"
    _frozen(tmp_path, "index", "smoke results")  # what the smoke render froze
    freezer.use(tmp_path, "default")  # post-render: the default build's freezer is back
    assert _read(tmp_path, "index") == "default results" and freezer.owner(tmp_path) == "default"
    assert not (tmp_path / "_freeze" / "PROFILE").exists()  # the committed tree is unchanged
    freezer.use(tmp_path, "smoke")  # the next smoke render gets its own results back
    assert _read(tmp_path, "index") == "smoke results"


def test_an_interrupted_profile_render_is_undone_by_the_next_render(tmp_path):
    _frozen(tmp_path, "index", "default results")
    freezer.use(tmp_path, "pythia")
    _frozen(tmp_path, "index", "pythia results")  # ... and the render died before post-render
    freezer.use(tmp_path, "default")  # the next default render's pre-render hook
    assert _read(tmp_path, "index") == "default results"
    assert (tmp_path / "_freeze-pythia" / "PROFILE").read_text().strip() == "pythia"


def test_a_stale_aside_freezer_is_an_error_not_overwritten(tmp_path):
    _frozen(tmp_path, "index", "default results")
    (tmp_path / "_freeze-default").mkdir()
    with pytest.raises(RuntimeError, match="_freeze-default exists"):
        freezer.use(tmp_path, "smoke")
    assert _read(tmp_path, "index") == "default results"


def test_jupyter_cache_is_cleared_beside_every_chapter(tmp_path):
    for d in (tmp_path, tmp_path / "report"):
        (d / ".jupyter_cache" / "executed").mkdir(parents=True)
    gone = freezer.clear_jupyter_cache(tmp_path)
    assert len(gone) == 2 and not any(p.exists() for p in gone)

import json

import numpy as np
import pytest

from analysis.checkpoints import Run
from analysis.checkpoints import tiny
from analysis.checkpoints.tiny import dedup, train

from .conftest import fresh_cache, smoke_settings


def test_checkpoint_schedule_follows_pythia():
    assert tiny.checkpoint_steps(1024, 128) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 640, 768, 896, 1024]
    assert tiny.checkpoint_steps(16, 8) == [0, 1, 2, 4, 8, 16]
    assert tiny.checkpoint_steps(1000, 300) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 900, 1000]


def test_learning_rate_warms_up_then_decays_to_min():
    cfg = {"lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "train_steps": 100}
    lrs = [train.learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert train.learning_rate(100, cfg) == pytest.approx(1e-4)


def test_dedup_drops_a_respelled_copy_and_keeps_distinct_texts():
    rng = np.random.default_rng(0)
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 6)) for _ in range(3000)]
    a = " ".join(rng.choice(vocab, 4000))
    b = " ".join(rng.choice(vocab, 4000))
    respelled = " ".join(w + "e" if i % 5 == 0 else w for i, w in enumerate(a.split()))  # old spelling
    kept, dropped = dedup.deduplicate({"a": a, "b": b, "a_folio": respelled}, threshold=0.1)
    assert kept == ["a", "b"] and dropped == {"a_folio": "a"}


def test_smoke_suite_has_both_runs_at_every_scheduled_step(smoke_suite):
    manifest = json.loads((smoke_suite / "manifest.json").read_text())
    cfg = smoke_settings()
    for name in ("raw", "deduped"):
        run = Run(name, smoke_suite / name)
        assert run.steps == tiny.checkpoint_steps(cfg["train_steps"], cfg["linear_every"])
        assert run.checkpoint(0).n_layers == cfg["n_layer"]
    assert manifest["runs"]["raw"]["documents"] == cfg["max_documents"]
    assert manifest["runs"]["deduped"]["documents"] == cfg["max_documents"] - len(manifest["dropped_as_duplicates"])
    assert manifest["runs"]["deduped"]["documents"] < manifest["runs"]["raw"]["documents"]
    # Same seed: both runs start from the same weights and then diverge with the data.
    raw, dd = Run("raw", smoke_suite / "raw"), Run("deduped", smoke_suite / "deduped")
    assert np.array_equal(raw.checkpoint(0).matrix("qkv", 1), dd.checkpoint(0).matrix("qkv", 1))
    assert not np.array_equal(raw.checkpoint(16).matrix("qkv", 1), dd.checkpoint(16).matrix("qkv", 1))


@pytest.mark.slow
def test_two_builds_give_bit_identical_checkpoints(smoke_suite, corpus_cache, tmp_path):
    again = train.build(smoke_settings(), fresh_cache(corpus_cache, tmp_path))
    files = sorted(p.relative_to(smoke_suite) for p in smoke_suite.rglob("*") if p.suffix in (".safetensors", ".json")
                   and p.name != "manifest.json")
    assert any(f.suffix == ".safetensors" for f in files)
    for f in files:
        assert (smoke_suite / f).read_bytes() == (again / f).read_bytes(), f


def test_an_existing_suite_is_reused_not_retrained(smoke_suite):
    before = (smoke_suite / "manifest.json").stat().st_mtime_ns
    assert train.build(smoke_settings(), smoke_suite.parent.parent) == smoke_suite
    assert (smoke_suite / "manifest.json").stat().st_mtime_ns == before

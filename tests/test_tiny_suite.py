import copy
import json
import os
import threading
import time

import numpy as np
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from safetensors.torch import load_file

from analysis.checkpoints import Run
from analysis.checkpoints import tiny
from analysis.checkpoints.tiny import dedup, layout, train

from .conftest import fresh_cache, smoke_settings


def serial(fn, jobs, labels):
    """pool.run_all in this process, one job after another (tests/test_pool.py checks that
    the pool's processes give the same bits)."""
    return [fn(*job) for job in jobs]


def test_checkpoint_schedule_follows_pythia():
    assert tiny.checkpoint_steps(1024, 128) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 640, 768, 896, 1024]
    assert tiny.checkpoint_steps(16, 8) == [0, 1, 2, 4, 8, 16]
    assert tiny.checkpoint_steps(1000, 300) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 900, 1000]
    assert tiny.checkpoint_steps(768, 128, [0.25]) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 512, 640, 768]
    assert tiny.checkpoint_steps(1024, 128, [0.25]) == tiny.checkpoint_steps(1024, 128)  # 256 is on the grid
    # never past the line: 771 and 774 steps round 192.75 and 193.5 up, the checkpoint floors them
    assert 192 in tiny.checkpoint_steps(771, 128, [0.25]) and 193 in tiny.checkpoint_steps(774, 128, [0.25])
    assert tiny.checkpoint_steps(2, 1, [0.25]) == [0, 1, 2]


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


def test_smoke_suite_has_every_run_at_every_scheduled_step(smoke_suite):
    manifest = json.loads((smoke_suite / "manifest.json").read_text())
    cfg = smoke_settings()
    assert sorted(manifest["runs"]) == sorted(cfg["runs"]) == ["deduped", "raw", "raw-seed2", "seq", "seq-seed2"]
    for name, spec in cfg["runs"].items():
        run = Run(name, smoke_suite / name)
        assert run.steps == tiny.checkpoint_steps(cfg["train_steps"], cfg["linear_every"], cfg["checkpoint_shares"])
        assert run.checkpoint(0).n_layers == cfg["n_layer"]
        assert {k: manifest["runs"][name][k] for k in ("data", "seed", "arch")} == layout.run_spec(spec)
    assert manifest["runs"]["raw"]["documents"] == cfg["max_documents"]
    assert manifest["runs"]["deduped"]["documents"] == cfg["max_documents"] - len(manifest["dropped_as_duplicates"])
    assert manifest["runs"]["deduped"]["documents"] < manifest["runs"]["raw"]["documents"]
    # Each run has its own seed, so its own initial weights: the treatment differs from the
    # reference in initialisation and data order as the replica does, and in data besides.
    raw, dd = Run("raw", smoke_suite / "raw"), Run("deduped", smoke_suite / "deduped")
    assert not np.array_equal(raw.checkpoint(0).matrix("qkv", 1), dd.checkpoint(0).matrix("qkv", 1))


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_replica_differs_from_reference_only_in_seed_and_data_order(smoke_suite):
    manifest = json.loads((smoke_suite / "manifest.json").read_text())["runs"]
    ref, rep, dd = manifest["raw"], manifest["raw-seed2"], manifest["deduped"]
    # The same corpus, tokens and (one shared tokenizer file) vocabulary; only the seed differs.
    same = lambda entry: {k: v for k, v in entry.items() if k not in ("seed", "train seconds")}  # noqa: E731
    assert same(ref) == same(rep)
    assert len({ref["seed"], dd["seed"], rep["seed"]}) == 3
    # The same model configuration and schedule: checkpoint steps and learning rate at every step.
    for step in ("step0", "step16"):
        assert (smoke_suite / "raw" / step / "config.json").read_text() == \
            (smoke_suite / "raw-seed2" / step / "config.json").read_text()
    assert Run("raw", smoke_suite / "raw").steps == Run("raw-seed2", smoke_suite / "raw-seed2").steps
    logs = {n: json.loads((smoke_suite / n / "train_log.json").read_text()) for n in ("raw", "raw-seed2")}
    assert [(r["step"], r["lr"]) for r in logs["raw"]] == [(r["step"], r["lr"]) for r in logs["raw-seed2"]]
    assert logs["raw"][0]["loss"] != logs["raw-seed2"][0]["loss"]
    # Another initialisation: every weight matrix differs at step 0 (norm weights start at one in both).
    w_ref, w_rep, w_dd = (_weights(smoke_suite / n / "step0") for n in ("raw", "raw-seed2", "deduped"))
    assert w_ref.keys() == w_rep.keys() == w_dd.keys()
    matrices = [k for k in w_ref if w_ref[k].ndim == 2]
    assert matrices and not any(torch.equal(w_ref[k], w_rep[k]) for k in matrices)
    # Another data order: the batch positions come from the run's seed.
    n_tokens, cfg = ref["tokens"], smoke_settings()
    assert not np.array_equal(train.batch_offsets(n_tokens, cfg, ref["seed"]), train.batch_offsets(n_tokens, cfg, rep["seed"]))


@pytest.mark.slow
def test_each_run_is_seeded_and_fed_by_its_own_settings(corpus_cache, tmp_path, monkeypatch):
    """The build hands each run its own seed for weights and batch positions, and its own corpus."""
    seen = []

    def spy(n_tokens, cfg, seed):
        seen.append((n_tokens, seed))
        return batch_offsets(n_tokens, cfg, seed)

    batch_offsets = train.batch_offsets
    monkeypatch.setattr(train, "batch_offsets", spy)
    monkeypatch.setattr(train.pool, "run_all", serial)  # the spy sees this process only
    cfg = smoke_settings()
    cfg["runs"] = {"a": {"data": "raw", "seed": 7}, "b": {"data": "deduped", "seed": 7}, "c": {"data": "raw", "seed": 8}}
    suite = train.build(cfg, fresh_cache(corpus_cache, tmp_path))
    runs = json.loads((suite / "manifest.json").read_text())["runs"]
    assert seen == [(runs["a"]["tokens"], 7), (runs["b"]["tokens"], 7), (runs["a"]["tokens"], 8)]
    assert runs["b"]["tokens"] < runs["a"]["tokens"] == runs["c"]["tokens"]
    w = {n: _weights(suite / n / "step0") for n in "abc"}
    assert all(torch.equal(w["a"][k], w["b"][k]) for k in w["a"])
    assert not torch.equal(w["a"]["gpt_neox.layers.0.attention.query_key_value.weight"],
                           w["c"]["gpt_neox.layers.0.attention.query_key_value.weight"])


@pytest.mark.slow
def test_a_second_build_waits_for_the_lock_then_reuses_the_suite(corpus_cache, tmp_path, monkeypatch):
    cfg, cache = smoke_settings(), fresh_cache(corpus_cache, tmp_path)
    trained, results = [], []
    train_run = train.train_run
    monkeypatch.setattr(train, "train_run", lambda name, *a, **kw: trained.append(name) or train_run(name, *a, **kw))
    monkeypatch.setattr(train.pool, "run_all", serial)  # the spy sees this process only
    builders = [threading.Thread(target=lambda: results.append(train.build(cfg, cache))) for _ in range(2)]
    held = FileLock(train.lock_path(cfg, cache))
    held.acquire()  # as another process mid-build would
    try:
        for b in builders:
            b.start()
        time.sleep(1.0)
        assert all(b.is_alive() for b in builders) and trained == []  # both wait; neither trains
    finally:
        held.release()
    for b in builders:
        b.join(timeout=300)
    assert len(results) == 2 and results[0] == results[1]
    assert trained == list(cfg["runs"])  # one build trained each run once; the other reused it
    assert (results[0] / "manifest.json").is_file()


def test_a_finished_suite_is_returned_without_taking_the_lock(smoke_suite):
    """A finished folder is never rebuilt or replaced, even while someone holds its lock."""
    cache = smoke_suite.parent.parent
    held = FileLock(train.lock_path(smoke_settings(), cache))
    held.acquire()
    try:
        before = (smoke_suite / "manifest.json").stat().st_mtime_ns
        assert train.build(smoke_settings(), cache) == smoke_suite
        assert (smoke_suite / "manifest.json").stat().st_mtime_ns == before
    finally:
        held.release()


@pytest.mark.slow
def test_two_builds_give_bit_identical_checkpoints(smoke_suite, corpus_cache, tmp_path):
    again = train.build(smoke_settings(), fresh_cache(corpus_cache, tmp_path))
    files = sorted(Path(d, f).relative_to(smoke_suite) for d, _, names in os.walk(smoke_suite, followlinks=True)
                   for f in names if Path(f).suffix in (".safetensors", ".json") and f not in ("manifest.json", "run.json"))
    assert any(f.suffix == ".safetensors" for f in files)
    for f in files:
        assert (smoke_suite / f).read_bytes() == (again / f).read_bytes(), f


def test_an_existing_suite_is_reused_not_retrained(smoke_suite):
    before = (smoke_suite / "manifest.json").stat().st_mtime_ns
    assert train.build(smoke_settings(), smoke_suite.parent.parent) == smoke_suite
    assert (smoke_suite / "manifest.json").stat().st_mtime_ns == before


def test_adding_a_run_trains_only_that_run(smoke_suite, monkeypatch):
    """Runs are cached by their own key: a new entry in tiny.runs trains it alone, and the
    existing runs' folders (and the finished suite for the old settings) are left as they were."""
    cache, cfg = smoke_suite.parent.parent, smoke_settings()
    trained = []
    train_run = train.train_run
    monkeypatch.setattr(train, "train_run", lambda name, *a, **kw: trained.append(name) or train_run(name, *a, **kw))
    before = (smoke_suite / "manifest.json").stat().st_mtime_ns
    more = copy.deepcopy(cfg)
    more["runs"]["extra"] = {"data": "raw", "seed": 99, "arch": "sequential"}
    suite = train.build(more, cache)
    assert suite != smoke_suite and trained == ["extra"]
    for name in cfg["runs"]:  # the very same folders, not copies
        assert (suite / name).resolve() == (smoke_suite / name).resolve()
    assert (suite / "tokenizer.json").resolve() == (smoke_suite / "tokenizer.json").resolve()
    assert (smoke_suite / "manifest.json").stat().st_mtime_ns == before
    fewer = copy.deepcopy(cfg)
    del fewer["runs"]["deduped"]
    train.build(fewer, cache)
    assert trained == ["extra"]  # dropping a run trains nothing


def test_run_and_tokenizer_keys_follow_what_they_depend_on():
    cfg, spec = smoke_settings(), {"data": "raw", "seed": 1}
    key = layout.run_key(cfg, spec)
    assert key == layout.run_key(cfg, {**spec, "arch": "parallel"})  # the default, spelled out
    assert key == layout.run_key({**cfg, "runs": {}}, spec)  # other runs do not matter
    assert key != layout.run_key(cfg, {**spec, "arch": "sequential"}) != layout.run_key(cfg, {**spec, "seed": 2})
    assert key != layout.run_key({**cfg, "lr": 2e-3}, spec)
    assert layout.tokenizer_key(cfg) == layout.tokenizer_key({**cfg, "lr": 2e-3, "runs": {}})
    assert layout.tokenizer_key(cfg) != layout.tokenizer_key({**cfg, "vocab_size": 1024})


def test_sequential_run_differs_from_its_parallel_twin_in_block_wiring_only(smoke_suite):
    """seq shares raw's seed: the same parameter names, shapes and initial values, the same
    data order; the configs differ in use_parallel_residual alone, and training then differs."""
    raw, seq = _weights(smoke_suite / "raw" / "step0"), _weights(smoke_suite / "seq" / "step0")
    assert raw.keys() == seq.keys() and all(torch.equal(raw[k], seq[k]) for k in raw)
    configs = [json.loads((smoke_suite / n / "step0" / "config.json").read_text()) for n in ("raw", "seq")]
    assert {k for k in configs[0] if configs[0][k] != configs[1].get(k)} == {"use_parallel_residual"}
    assert configs[0]["use_parallel_residual"] and not configs[1]["use_parallel_residual"]
    last = f"step{smoke_settings()['train_steps']}"
    raw, seq = _weights(smoke_suite / "raw" / last), _weights(smoke_suite / "seq" / last)
    assert not torch.equal(raw["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"], seq["gpt_neox.layers.0.mlp.dense_h_to_4h.weight"])

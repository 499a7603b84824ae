"""Init runs (analysis/checkpoints/tiny/init_runs.py): keyed, atomic, one data order, recorded losses."""

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.checkpoints.tiny import init_runs, train
from analysis.checkpoints.tiny.corpus import documents, fetch

from .conftest import fresh_cache, smoke_settings

INIT = {"seeds": [1, 2], "train_steps": 4, "batch_size": 2, "warmup_steps": 1, "eval_every": 2, "eval_rows": 2}
QKV = "gpt_neox.layers.1.attention.query_key_value.weight"
TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 20


@pytest.fixture
def setup(corpus_cache, tmp_path):
    """(cache, tiny settings, a folder with a tokenizer.json) on two documents."""
    cache = fresh_cache(corpus_cache, tmp_path / "cache")
    tiny = {**smoke_settings(), "max_documents": 2}
    docs = documents(fetch(tiny["corpus"], cache), 2)
    suite = tmp_path / "suite"
    suite.mkdir()
    train.train_tokenizer(list(docs.values()), tiny["vocab_size"]).save(str(suite / "tokenizer.json"))
    return cache, tiny, suite


def _train(setup, kind="standard", seed=1, init_fn=None, extra=None, source="abc", init=INIT):
    cache, tiny, suite = setup
    return init_runs.train(cache, tiny, init, suite, source, "parallel", 1234, kind, seed, init_fn, extra or {},
                           {"qkv": QKV}, TEXT)


def test_keys_follow_what_a_run_depends_on():
    tiny = smoke_settings()

    def key(tiny=tiny, init=INIT, source="abc", kind="standard", seed=1, extra=None, text=TEXT, arch="parallel", data=7):
        return init_runs.run_key(tiny, init, source, kind, seed, extra or {}, text, arch, data)

    assert key() == key(tiny={**tiny, "runs": {}})  # the suite's runs do not matter
    assert key() == key(init={**INIT, "seeds": [1, 2, 3]})  # other seeds do not
    others = [key(source="abd"), key(kind="shuffle"), key(seed=2), key(extra={"depths": {"qkv": 3}}),
              key(init={**INIT, "train_steps": 8}), key(init={**INIT, "eval_rows": 3}), key(tiny={**tiny, "lr": 2e-3}),
              key(text=TEXT + "."), key(arch="sequential"), key(data=8)]
    assert len({key(), *others}) == 1 + len(others)


def test_a_run_records_losses_and_matrices_and_is_reused(setup, monkeypatch):
    folder = _train(setup)
    log = json.loads((folder / "log.json").read_text())
    assert [x["step"] for x in log["heldout"]] == init_runs.eval_steps(4, 2) == [0, 1, 2, 4]
    assert [x["step"] for x in log["train"]] == [0, 1, 2]  # no batch is taken at the last step
    assert all(np.isfinite(x["loss"]) for x in log["heldout"] + log["train"])
    with np.load(folder / "matrices.npz") as z:
        assert sorted(z.files) == [f"{s}/qkv" for s in (0, 1, 2, 4)]
        assert not np.array_equal(z["0/qkv"], z["4/qkv"])  # trained
    assert json.loads((folder / "run.json").read_text())["seconds"] > 0
    monkeypatch.setattr(train, "train_run", lambda *a, **k: pytest.fail("a cached run was trained again"))
    assert _train(setup) == folder


def test_adding_a_seed_trains_only_it_and_every_run_sees_one_data_order(setup, monkeypatch):
    _train(setup, seed=1)
    seen = []
    offsets = train.batch_offsets
    monkeypatch.setattr(train, "batch_offsets", lambda n, cfg, seed: seen.append(seed) or offsets(n, cfg, seed))
    _train(setup, seed=1)
    _train(setup, seed=2)
    _train(setup, kind="shuffle", seed=3, init_fn=lambda model: None)
    assert seen == [1234, 1234]  # two new runs, the data seed for both, whatever their own seed


def test_a_failed_run_leaves_nothing_behind_and_a_retry_trains(setup):
    def broken(model):
        raise RuntimeError("init failed")

    with pytest.raises(RuntimeError, match="init failed"):
        _train(setup, kind="transplant", init_fn=broken)
    inits = Path(setup[0]) / "tiny-suite" / "inits"
    assert [p.name for p in inits.iterdir() if not p.name.endswith(".lock")] == []  # no folder, no temp folder
    folder = _train(setup, kind="transplant", init_fn=lambda model: None)
    assert (folder / "run.json").is_file()


def test_the_init_hook_changes_the_first_matrices_only_where_it_acts(setup):
    def zero_qkv(model):
        dict(model.named_parameters())[QKV].zero_()

    base, changed = _train(setup, seed=5), _train(setup, kind="zero", seed=5, init_fn=zero_qkv)
    with np.load(base / "matrices.npz") as a, np.load(changed / "matrices.npz") as b:
        assert np.abs(a["0/qkv"]).max() > 0 and np.abs(b["0/qkv"]).max() == 0

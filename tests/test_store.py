import numpy as np
import pytest

from analysis.store import Store


def test_cached_computes_once_and_returns_what_was_stored(tmp_path):
    store, calls = Store(tmp_path), []

    def compute():
        calls.append(1)
        return {"sv": np.arange(3.0), "scale": 0.5, "rows": 7}

    key = {"kind": "spectrum", "weights": "abc", "tensor": "t", "version": 1}
    first = store.cached(key, compute)
    second = store.cached(key, compute)
    assert len(calls) == 1 and store.hits == 1 and store.misses == 1
    assert np.array_equal(second["sv"], first["sv"]) and second["scale"] == 0.5 and second["rows"] == 7


def test_any_change_in_the_key_recomputes(tmp_path):
    store = Store(tmp_path)
    key = {"kind": "spectrum", "weights": "abc", "tensor": "t", "version": 1}
    store.cached(key, lambda: {"x": 1.0})
    assert store.get({**key, "version": 2}) is None
    assert store.get({**key, "weights": "abd"}) is None


def test_a_failing_computation_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path)

    def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.cached({"kind": "k"}, boom)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    store = Store(tmp_path)

    def broken_savez(f, **arrays):
        f.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        store.put({"kind": "k"}, {"x": np.zeros(3)})
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]

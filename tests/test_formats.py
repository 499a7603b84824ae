"""Byte-range readers: safetensors and PyTorch zip, local and over HTTP Range requests."""

import json
import os
import pickle
import struct
import zipfile

import fsspec
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from analysis.checkpoints import Checkpoint, CheckpointError, formats
from analysis.checkpoints.tensor_cache import TensorCache
from analysis.testing.http_range_server import RangeServer

CONFIG = {"model_type": "gpt_neox", "num_hidden_layers": 2, "num_attention_heads": 2}


def write_folder(folder, tensors: dict, kind="safetensors", shards=1):
    """A checkpoint folder: config.json plus weights as one file, shards, or a torch .bin."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    if kind == "bin":
        torch.save(tensors, folder / "pytorch_model.bin")
        return folder
    if shards == 1:
        save_file(tensors, folder / "model.safetensors")
        return folder
    names = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        part = {n: tensors[n] for n in names[i::shards]}
        file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, folder / file)
        weight_map.update({n: file for n in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def sample_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "a.f32": torch.randn(6, 4, generator=g),
        "b.f16": torch.randn(3, 5, generator=g).half(),
        "c.bf16": torch.randn(4, 4, generator=g).bfloat16(),
        "d.f64": torch.randn(7, generator=g).double(),
        "e.big": torch.randn(256, 128, generator=g),
    }


@pytest.mark.parametrize("kind,shards", [("safetensors", 1), ("safetensors", 3), ("bin", 1)])
def test_every_dtype_reads_back_exactly(tmp_path, kind, shards):
    tensors = sample_tensors()
    ck = Checkpoint(write_folder(tmp_path / "ck", tensors, kind, shards), 0)
    assert ck.tensor_names() == sorted(tensors)
    for name, t in tensors.items():
        ours = ck.tensor(name)
        ref = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        assert ours.shape == tuple(t.shape)
        np.testing.assert_array_equal(ours, ref)


def test_safetensors_preferred_when_both_formats_exist(tmp_path):
    folder = write_folder(tmp_path / "ck", sample_tensors(), "bin")
    save_file(sample_tensors(1), folder / "model.safetensors")
    ck = Checkpoint(folder, 0)
    assert ck.weights_file == "model.safetensors"
    np.testing.assert_array_equal(ck.tensor("a.f32"), sample_tensors(1)["a.f32"].numpy())


def test_restricted_unpickler_refuses_os_and_executes_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match=r"refusing to load (posix|os)\.system.*nothing was imported or executed"):
        Checkpoint(folder, 0).tensor_names()
    assert not marker.exists()


def raw_safetensors(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


GOOD = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize("content,message", [
    (raw_safetensors(GOOD, b"\0" * 16)[:30], "runs beyond the file|truncated"),
    (struct.pack("<Q", 10**9) + b"{}", "header length 1000000000 runs beyond"),
    (raw_safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 64]}}, b"\0" * 16), "outside the file"),
    (raw_safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                      "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\0" * 16), "overlap"),
    (raw_safetensors({"w": {"dtype": "F8_E9", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 16), "unknown dtype 'F8_E9'"),
    (raw_safetensors({"w": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}}, b"\0" * 16), "needs 24 bytes"),
])
def test_malformed_safetensors_are_named_errors(tmp_path, content, message):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        Checkpoint(folder, 0).tensor("w")
    assert "model.safetensors" in str(err.value)


def test_zip_without_data_pkl_and_missing_member_are_named(tmp_path):
    folder = write_folder(tmp_path / "ck", {"w": torch.zeros(2, 2)}, "bin")
    src = folder / "pytorch_model.bin"
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for drop, message in (("data.pkl", "has no data.pkl"), ("data/0", "lacks")):
        with zipfile.ZipFile(src, "w") as z:
            for n, b in members.items():
                if not n.endswith(drop):
                    z.writestr(n, b)
        with pytest.raises(CheckpointError, match=message):
            Checkpoint(folder, 0).tensor("w")


def test_index_naming_a_missing_shard_is_named(tmp_path):
    folder = write_folder(tmp_path / "ck", sample_tensors(), shards=2)
    os.remove(folder / "model-00002-of-00002.safetensors")
    ck = Checkpoint(folder, 0)
    missing = [n for n, f in ck.weight_map.items() if f.startswith("model-00002")][0]
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors: shard named by .* does not exist"):
        ck.tensor(missing)


@pytest.fixture()
def served(tmp_path):
    root = tmp_path / "srv"
    write_folder(root / "single", sample_tensors())
    write_folder(root / "sharded", sample_tensors(), shards=3)
    write_folder(root / "bin", sample_tensors(), "bin")
    with RangeServer(root) as srv:
        yield srv


@pytest.mark.parametrize("folder", ["single", "bin"])
def test_reading_one_tensor_over_http_moves_only_its_bytes_and_the_index(served, folder):
    fs = fsspec.filesystem("http")
    ck = Checkpoint(f"{served.url}/{folder}", 0, fs=fs)
    ck.tensor_names()  # the index: safetensors header, or zip directory + data.pkl
    index_bytes = served.bytes_sent
    served.reset()
    w = ck.tensor("e.big")
    assert w.shape == (256, 128)
    # exactly the tensor; in a zip also its member's local header (read with it, no request of its own)
    slack = 0 if folder == "single" else 30 + formats.LOCAL_NAME_GUESS + formats.LOCAL_EXTRA_GUESS
    assert w.nbytes <= served.bytes_sent <= w.nbytes + slack
    size = fs.size(f"{served.url}/{folder}/" + ck.weights_file)
    assert index_bytes < 0.05 * size


def test_sharded_checkpoint_reads_only_the_shard_that_holds_the_tensor(served):
    fs = fsspec.filesystem("http")
    ck = Checkpoint(f"{served.url}/sharded", 0, fs=fs)
    shard = ck.weight_map["e.big"]
    served.reset()
    ck.tensor("e.big")
    header_plus_tensor = served.bytes_sent
    shard_size = fs.size(f"{served.url}/sharded/{shard}")
    # the header is read speculatively: max(1 kB, 1/64 of the file) in one read
    assert 256 * 128 * 4 <= header_plus_tensor < 256 * 128 * 4 + max(1024, shard_size // 64) + 512
    assert len(ck._indexes) == 1  # only the one shard's header was read


def test_tensor_cache_makes_a_second_read_free_and_offline_misses_are_named(served, tmp_path, monkeypatch):
    fs = fsspec.filesystem("http")
    cache = TensorCache(tmp_path / "cache")
    ck = Checkpoint(f"{served.url}/single", 0, fs=fs, tensor_cache=cache, cache_id="srv/single@abc123")
    first = ck.tensor("e.big")
    served.reset()
    again = Checkpoint(f"{served.url}/single", 0, fs=fs, tensor_cache=cache, cache_id="srv/single@abc123")
    np.testing.assert_array_equal(again.tensor("e.big"), first)
    assert served.bytes_sent == 0  # nothing at all: listing and index came from the cache too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = Checkpoint(f"{served.url}/single", 0, fs=fs, tensor_cache=cache, cache_id="srv/single@abc123")
    np.testing.assert_array_equal(offline.tensor("e.big"), first)
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set and tensor 'a.f32' of srv/single@abc123"):
        offline.tensor("a.f32")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set and srv/other@1 has no cached 'files'"):
        Checkpoint(f"{served.url}/single", 0, fs=fs, tensor_cache=cache, cache_id="srv/other@1")


def test_a_failed_read_caches_nothing(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "model.safetensors").write_bytes(raw_safetensors(GOOD, b"\0" * 8))  # data cut short
    cache = TensorCache(tmp_path / "cache")
    with pytest.raises(CheckpointError):
        Checkpoint(folder, 0, tensor_cache=cache, cache_id="x@1").tensor("w")
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_zip_local_header_longer_than_guessed_costs_one_more_read_and_reads_right(tmp_path, monkeypatch):
    tensors = sample_tensors()
    ck = Checkpoint(write_folder(tmp_path / "ck", tensors, "bin"), 0)
    calls = []
    size = (tmp_path / "ck" / "pytorch_model.bin").stat().st_size
    fetch = ck._fetcher("pytorch_model.bin", size)
    monkeypatch.setattr(formats, "LOCAL_NAME_GUESS", 0)
    monkeypatch.setattr(formats, "LOCAL_EXTRA_GUESS", 0)
    infos = list(ck._index("pytorch_model.bin").values())
    got = formats.read_tensors(lambda r: calls.append(r) or fetch(r), infos, size, "ck", max_gap=0)
    for name, t in tensors.items():
        np.testing.assert_array_equal(got[name], t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy())
    assert len(calls) == 1 + len(infos)  # the batch, then each tensor's bytes past the guessed header


def test_coalesce_merges_neighbours_within_the_gap_only():
    assert formats.coalesce([(10, 20), (0, 5), (25, 30), (100, 110)], max_gap=5) == [(0, 30), (100, 110)]
    assert formats.coalesce([(0, 10), (5, 8)], max_gap=0) == [(0, 10)]

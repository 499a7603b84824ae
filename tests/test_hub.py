"""Hub runs: branch rules, pinned commits, byte-range reads, caches and offline use.

The hub's API is replaced by its recorded answer (tests/fixtures) and its file system by
fsspec's HTTP file system against a local Range server; and, further down, the real client
(HfApi, HfFileSystem, transformers) talks to a fake hub on 127.0.0.1 (analysis.testing.fake_hub)
that answers as the hub does. No network here."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from fsspec.implementations.http import HTTPFileSystem
from huggingface_hub.hf_api import GitRefInfo, GitRefs
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from analysis import activations
from analysis.checkpoints import CheckpointError, TransientError, checkpoint, retry
from analysis.checkpoints.hub import KNOWN_BAD_STEPS, SUITE_RULES, HubRun, rule_for, steps_from_branches
from analysis.testing.fake_hub import FakeHub, client_on
from analysis.testing.http_range_server import RangeServer

from .test_formats import sample_tensors, write_folder

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "hub-refs-pythia.json").read_text())
REPO = "EleutherAI/pythia-70m-deduped"


class RecordedApi:
    def __init__(self, answer=FIXTURE):
        self.answer, self.calls = answer, 0

    def list_repo_refs(self, repo_id, **kw):
        self.calls += 1
        refs = [GitRefInfo(name=b["name"], ref=b["ref"], target_commit=b["targetCommit"]) for b in self.answer["branches"]]
        return GitRefs(branches=refs, converts=[], tags=[])


class UnreachableApi:
    def list_repo_refs(self, repo_id, **kw):
        raise ConnectionError("Failed to resolve 'huggingface.co'")


class LfsHTTPFileSystem(HTTPFileSystem):
    """HTTP file system that reports LFS hashes the way HfFileSystem.info does."""

    lfs = {}

    async def _info(self, path, **kw):
        out = await super()._info(path, **kw)
        if path in self.lfs:
            out["lfs"] = {"sha256": self.lfs[path], "size": out["size"]}
        return out


@pytest.fixture()
def hub(tmp_path):
    root = tmp_path / "hub"
    for b in FIXTURE["branches"]:
        if b["name"].startswith("step"):
            write_folder(root / REPO / b["targetCommit"], sample_tensors(seed=int(b["name"][4:]) % 7))
    with RangeServer(root) as srv:
        fs = LfsHTTPFileSystem()
        yield srv, fs, (lambda repo, commit: f"{srv.url}/{repo}/{commit}")


def test_branch_rules_of_each_suite():
    pythia = steps_from_branches([{"name": n, "target_commit": n} for n in ("main", "step0", "step143000")], SUITE_RULES["pythia"])
    assert sorted(pythia) == [0, 143000]
    crfm = steps_from_branches([{"name": "checkpoint-400000", "target_commit": "a"}, {"name": "main", "target_commit": "b"}],
                               SUITE_RULES["crfm-gpt2"])
    assert crfm == {400000: {"branch": "checkpoint-400000", "commit": "a"}}
    olmo = steps_from_branches([{"name": "step20000-tokens84B", "target_commit": "c"}], SUITE_RULES["olmo"])
    assert olmo == {20000: {"branch": "step20000-tokens84B", "commit": "c"}}


def test_hub_run_lists_steps_pins_commits_and_reads_tensors(hub, tmp_path):
    srv, fs, path_for = hub
    run = HubRun(REPO, tmp_path / "cache", api=RecordedApi(), fs=fs, path_for=path_for)
    assert run.name == "pythia-70m-deduped" and run.steps == [0, 1, 2, 4, 1000, 143000]
    ck = run.checkpoint(1000)
    assert ck.cache_id == f"{REPO}@0000000000000000000000000000000000001000"
    np.testing.assert_array_equal(ck.tensor("e.big"), sample_tensors(seed=1000 % 7)["e.big"].numpy())
    with pytest.raises(CheckpointError, match="has no step 3; it has 6 steps from 0 to 143000"):
        run.checkpoint(3)


def test_lfs_hash_comes_from_metadata_without_downloading(hub, tmp_path):
    srv, fs, path_for = hub
    run = HubRun(REPO, tmp_path / "cache", api=RecordedApi(), fs=fs, path_for=path_for)
    ck = run.checkpoint(4)
    path = f"{path_for(REPO, '0000000000000000000000000000000000000004')}/model.safetensors"
    fs.lfs[path] = "ab" * 32
    srv.reset()
    assert ck.content_hash == "ab" * 32
    assert srv.file_bytes == 0


def test_second_run_and_offline_run_move_no_bytes(hub, tmp_path, monkeypatch):
    srv, fs, path_for = hub
    cache = tmp_path / "cache"
    first = HubRun(REPO, cache, api=RecordedApi(), fs=fs, path_for=path_for).checkpoint(2).tensor("e.big")
    srv.reset()
    api = RecordedApi()
    again = HubRun(REPO, cache, api=api, fs=fs, path_for=path_for).checkpoint(2).tensor("e.big")
    np.testing.assert_array_equal(again, first)
    assert srv.bytes_sent == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = HubRun(REPO, cache, api=UnreachableApi(), fs=fs, path_for=path_for)
    np.testing.assert_array_equal(offline.checkpoint(2).tensor("e.big"), first)
    assert srv.bytes_sent == 0
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set and .*@0000000000000000000000000000000000000001 has no cached"):
        offline.checkpoint(1)


def test_unreachable_repo_and_uncached_offline_are_named(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="EleutherAI/pythia-1b: cannot list the repo's branches.*ConnectionError"):
        HubRun("EleutherAI/pythia-1b", tmp_path, api=UnreachableApi())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set and the branches of EleutherAI/pythia-1b were never cached"):
        HubRun("EleutherAI/pythia-1b", tmp_path)
    assert not list(tmp_path.rglob("*.json"))


def _refs_answer(steps, commit=lambda s: f"{s:040d}"):
    """A refs answer in the API's shape (fixture commits: no network here to record real ones)."""
    branches = [{"name": "main", "ref": "refs/heads/main", "targetCommit": "f" * 40}]
    branches += [{"name": f"step{s}", "ref": f"refs/heads/step{s}", "targetCommit": commit(s)} for s in steps]
    return {"branches": branches, "converts": [], "tags": []}


def test_polypythia_seed_runs_follow_the_pythia_branch_rule():
    for repo in ("EleutherAI/pythia-410m-seed1", "EleutherAI/pythia-160m-seed9", "EleutherAI/pythia-160m-data-seed2"):
        assert rule_for(repo) == SUITE_RULES["pythia"]


def test_a_branch_reported_without_weights_is_left_out_and_named(tmp_path):
    # pythia-410m-seed2's step111000 branch exists but holds no weights (EleutherAI/pythia#202).
    repo = "EleutherAI/pythia-410m-seed2"
    run = HubRun(repo, tmp_path, api=RecordedApi(_refs_answer([0, 1, 110000, 111000, 112000, 143000])))
    assert run.steps == [0, 1, 110000, 112000, 143000]
    assert run.left_out == {111000: KNOWN_BAD_STEPS[repo][111000]}
    with pytest.raises(CheckpointError, match=r"step 111000 is left out: the branch has no weights \(EleutherAI/pythia#202\)"):
        run.checkpoint(111000)
    # The other seeds keep every step; an entry for a branch the repo lacks changes nothing.
    other = HubRun("EleutherAI/pythia-410m-seed1", tmp_path, api=RecordedApi(_refs_answer([0, 111000, 143000])))
    assert other.steps == [0, 111000, 143000] and other.left_out == {}
    fixed = HubRun(repo, tmp_path / "fixed", api=RecordedApi(_refs_answer([0, 143000])))
    assert fixed.steps == [0, 143000] and fixed.left_out == {}


def test_a_step0_that_is_not_the_runs_initialisation_is_left_out(tmp_path):
    # pythia-160m-weight-seed1/2: step1 onwards continues from another run's init (EleutherAI/pythia#203).
    run = HubRun("EleutherAI/pythia-160m-weight-seed1", tmp_path, api=RecordedApi(_refs_answer([0, 1, 2, 143000])))
    assert run.steps == [1, 2, 143000] and "pythia#203" in run.left_out[0]
    kept = HubRun("EleutherAI/pythia-160m-weight-seed1", tmp_path / "b", api=RecordedApi(_refs_answer([0, 1])), known_bad={})
    assert kept.steps == [0, 1] and kept.left_out == {}


# --- The real client (HfApi, HfFileSystem, transformers) against a fake hub on 127.0.0.1 ----

NEOX = GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                     rotary_pct=0.25, use_parallel_residual=True)


def neox_folder(folder, seed: int, kind: str, shards: int = 1, config=NEOX):
    """A 4-block GPT-NeoX checkpoint in Hugging Face layout: safetensors, sharded or .bin."""
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_folder(folder, state, kind, shards)
    (folder / "config.json").write_text(config.to_json_string())
    return state


@pytest.fixture()
def fake_hub(tmp_path):
    with FakeHub(page_size=3) as hub, client_on(hub.url):  # small pages: the client must follow `Link` pagination
        yield hub


def matrices_of_block(ck, block):
    return [ck.tensor_name(role, block) for role in ("qkv", "attn_out", "mlp_in", "mlp_out")]


@pytest.mark.parametrize("kind,shards", [("safetensors", 1), ("safetensors", 2), ("bin", 1)])
def test_real_client_reads_every_format_bit_identical_in_few_requests(fake_hub, tmp_path, kind, shards):
    states = {s: neox_folder(tmp_path / "src" / f"step{s}", s, kind, shards) for s in (0, 1000)}
    for s in states:
        fake_hub.add("EleutherAI/pythia-tiny", f"step{s}", tmp_path / "src" / f"step{s}")
    fake_hub.add("EleutherAI/pythia-tiny", "main", tmp_path / "src" / "step1000")
    run = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache")  # HfApi and HfFileSystem as in use
    assert run.steps == [0, 1000] and run.main_commit == fake_hub.branches["EleutherAI/pythia-tiny"]["main"]
    ck = run.checkpoint(1000)
    names = matrices_of_block(ck, 2)
    fake_hub.reset()
    ck.prefetch([(role, 2) for role in ("qkv", "attn_out", "mlp_in", "mlp_out")])
    log = fake_hub.requests()
    for n in names:  # every tensor exactly as saved, read back from the tensor cache
        np.testing.assert_array_equal(ck.tensor(n), states[1000][n].numpy())
    resolves = [r for r in log if "/resolve/" in r["path"] and r["path"].endswith((".safetensors", ".bin"))]
    cdn = [r for r in log if r["server"] == "cdn"]
    # each range is one resolve (302) and one CDN answer; the index costs at most 2 (safetensors)
    # or 3 (zip) of them, and one block's four matrices lie in one coalesced range
    assert len(resolves) == len(cdn) <= (2 if kind == "safetensors" else 3) + 1 + (shards - 1) * 2
    assert all(r["status"] == 302 for r in resolves) and all(r["status"] == 206 for r in cdn)
    asked = sum(states[1000][n].numel() * states[1000][n].element_size() for n in names)
    if shards == 1:  # the last range is the block's: its matrices, and the biases and norms between them
        assert asked <= cdn[-1]["bytes"] <= asked + 64 * 1024
    # a second Checkpoint object of the same commit reads no index, and all blocks at once
    fake_hub.reset()
    again = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(1000)
    again.prefetch([(role, b) for role in ("qkv", "attn_out", "mlp_in", "mlp_out") for b in range(4)])
    cdn = fake_hub.requests("cdn")
    assert len(cdn) <= shards  # one coalesced range per file holding them, no index read
    assert not [r for r in fake_hub.requests("hub") if "/api/" in r["path"] and "/refs" in r["path"]]  # refs cached
    for role in ("qkv", "mlp_out"):
        np.testing.assert_array_equal(again.matrix(role, 0), states[1000][again.tensor_name(role, 0)].numpy())


def test_fresh_refs_cache_asks_nothing_and_an_unreachable_hub_falls_back_with_a_warning(fake_hub, tmp_path, monkeypatch):
    neox_folder(tmp_path / "src", 0, "safetensors")
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    cache = tmp_path / "cache"
    first = HubRun("EleutherAI/pythia-tiny", cache).checkpoint(0).matrix("qkv", 1)
    fake_hub.reset()
    HubRun("EleutherAI/pythia-tiny", cache)
    assert fake_hub.requests() == []  # a fresh branch list is not asked for again
    # Hub unreachable, HF_HUB_OFFLINE unset: a fully cached read still works, and says why.
    monkeypatch.setattr("analysis.checkpoints.hub.REFS_MAX_AGE_S", 0)
    with client_on("http://127.0.0.1:9"):  # nothing listens on the discard port
        with pytest.warns(UserWarning, match="cannot list the repo's branches.*using the list cached"):
            run = HubRun("EleutherAI/pythia-tiny", cache)
        np.testing.assert_array_equal(run.checkpoint(0).matrix("qkv", 1), first)


def test_activation_model_is_pinned_in_the_project_cache_and_asks_for_no_conversion(fake_hub, tmp_path, monkeypatch):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    monkeypatch.delenv("DISABLE_SAFETENSORS_CONVERSION", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    src = tmp_path / "src"
    neox_folder(src, 0, "bin")  # a .bin-only revision, as many Pythia step branches are
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(63)} | {"[UNK]": 63}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(src)
    commit = fake_hub.add("EleutherAI/pythia-tiny", "step0", src)
    fake_hub.add("EleutherAI/pythia-tiny", "main", src, commit="f" * 40)
    run = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache")
    fake_hub.reset()
    model, tokenize = activations.load_model(run, run.checkpoint(0))
    for t in threading.enumerate():  # let a conversion thread, if one started, make its calls
        if t.name == "Thread-auto_conversion":
            t.join(timeout=30)
    paths = [r["path"] for r in fake_hub.requests("hub")]
    resolved = [p for p in paths if "/resolve/" in p]
    assert resolved and all(f"/resolve/{commit}/" in p for p in resolved)  # tokenizer too: never `main`
    # no safetensors auto-conversion: its thread asks for the repo's info and discussions
    assert not [p for p in paths if "/discussions" in p or p.rstrip("/").endswith("/api/models/EleutherAI/pythia-tiny")]
    assert tokenize("w1 w2 w3") == [1, 2, 3]
    assert list((tmp_path / "cache" / "models").glob("models--EleutherAI--pythia-tiny/snapshots/*/pytorch_model.bin"))
    assert not (tmp_path / "hf-home").exists()


# --- Faults: a server that ignores Range, rate limits; and what concurrency costs ---------

ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_a_server_that_ignores_range_is_an_error_naming_file_and_range_and_nothing_is_cached(fake_hub, tmp_path, kind):
    neox_folder(tmp_path / "src", 0, kind)
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    fake_hub.ignore_range = True  # 200 and the whole file, to every Range request
    run = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache")
    with pytest.raises(TransientError, match=r"pythia-tiny@\w+/(model\.safetensors|pytorch_model\.bin): asked for bytes "
                       r"\[\d+, \d+\) \(\d+ bytes\), got \d+; the server \(or a proxy\) does not answer Range requests"):
        run.checkpoint(0).matrix("mlp_in", 2)
    assert {r["status"] for r in fake_hub.requests("cdn")} == {200}
    assert not list((tmp_path / "cache").rglob("*.npy"))  # no wrong bytes were kept


def test_a_429_is_waited_out_as_the_hub_asks_on_every_call_we_make(fake_hub, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(retry, "_sleep", waits.append)
    state = neox_folder(tmp_path / "src", 0, "safetensors")
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    # hf_hub retries tree pages and file reads itself (http_backoff), but not these API calls
    for path, after in (("/refs", 3), ("/revision/", 2)):
        fake_hub.throttle(path, 1, retry_after=after)
    ck = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(0)
    np.testing.assert_array_equal(ck.matrix("qkv", 1), state[ck.tensor_name("qkv", 1)].numpy())
    assert sorted(waits) == [2, 3]  # Retry-After, honoured once for each
    assert sum(r["status"] == 429 for r in fake_hub.requests("hub")) == 2
    # a limit that does not lift within the bounded retries: a TransientError that says what to do
    fake_hub.throttle("/revision/", 100, retry_after=200)
    from huggingface_hub import HfFileSystem

    HfFileSystem.clear_instance_cache()
    with pytest.raises(TransientError, match=r"answered 429 \(rate limit\) 2 time\(s\); waited 200 s.*HF_TOKEN"):
        HubRun("EleutherAI/pythia-tiny", tmp_path / "other-cache").checkpoint(0)


def test_a_missing_repo_is_an_error_even_with_a_stale_cached_branch_list(fake_hub, tmp_path, monkeypatch):
    neox_folder(tmp_path / "src", 0, "safetensors")
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    HubRun("EleutherAI/pythia-tiny", tmp_path / "cache")
    monkeypatch.setattr("analysis.checkpoints.hub.REFS_MAX_AGE_S", 0)
    fake_hub.repos.pop("EleutherAI/pythia-tiny")  # deleted, renamed or made private since
    with pytest.raises(CheckpointError, match="EleutherAI/pythia-tiny: cannot list the repo's branches: the hub says RepositoryNotFoundError"):
        HubRun("EleutherAI/pythia-tiny", tmp_path / "cache")


def test_concurrent_reads_with_a_warm_index_ask_the_api_once_not_once_per_thread(fake_hub, tmp_path, monkeypatch):
    from huggingface_hub import HfFileSystem

    neox_folder(tmp_path / "src", 0, "safetensors")
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(0).prefetch([("qkv", 1)])  # index cached
    HfFileSystem.clear_instance_cache()  # a second process
    fake_hub.reset()
    monkeypatch.setattr(checkpoint, "CHUNK_BYTES", 4096)  # many concurrent requests
    ck = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(0)
    ck.prefetch([(r, b) for b in (0, 2, 3) for r in ROLES])
    api = [r["path"] for r in fake_hub.requests("hub") if r["path"].startswith("/api/")]
    assert len(fake_hub.requests("cdn")) >= 8 and len(api) <= 2, api  # repo check and listing, once


WIDE = GPTNeoXConfig(vocab_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
                     rotary_pct=0.25, use_parallel_residual=True)


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_prefetch_streams_into_the_cache_in_bounded_batches_of_parallel_chunks(fake_hub, tmp_path, monkeypatch, kind):
    import tracemalloc

    state = neox_folder(tmp_path / "src", 0, kind, config=WIDE)  # 4 blocks of 0.8 MB
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    ck = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(0)
    ck.weight_map  # noqa: B018  (index read before measuring)
    monkeypatch.setattr(checkpoint, "BATCH_BYTES", 300_000)
    monkeypatch.setattr(checkpoint, "CHUNK_BYTES", 64 * 1024)
    pairs = [(r, b) for b in range(4) for r in ROLES]
    names = [ck.tensor_name(r, b) for r, b in pairs]
    total = sum(state[n].numel() * state[n].element_size() for n in names)
    fake_hub.reset()
    tracemalloc.start()
    try:
        ck.prefetch(pairs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total > 3e6 and peak < 1.5e6, (total, peak)  # one batch and the chunks in flight, not everything
    cdn = [r for r in fake_hub.requests("cdn") if r["range"]]
    spans = [int(b) - int(a) + 1 for a, b in (r["range"][6:].split("-") for r in cdn)]
    assert max(spans) <= 64 * 1024 and len(cdn) >= total // (64 * 1024)  # big ranges went as parallel chunks
    loads = []
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a))
    ck.prefetch(pairs)  # all cached: nothing loaded, nothing fetched
    assert loads == [] and len(fake_hub.requests("cdn")) == len(cdn)
    monkeypatch.undo()
    for n in names:  # bit-identical, chunk seams and all
        np.testing.assert_array_equal(ck.tensor(n), state[n].numpy())


def test_cached_facts_of_another_form_are_read_again_not_misread(fake_hub, tmp_path):
    state = neox_folder(tmp_path / "src", 0, "safetensors")
    fake_hub.add("EleutherAI/pythia-tiny", "step0", tmp_path / "src")
    ck = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(0)
    ck.weight_map  # noqa: B018
    path = ck.tensor_cache._meta_path(ck.cache_id)
    meta = json.loads(path.read_text())
    assert meta["version"] == checkpoint.META_VERSION
    meta.update(version=checkpoint.META_VERSION + 1, weight_map={"x": "model.safetensors"})  # a later reader's form
    path.write_text(json.dumps(meta))
    fake_hub.reset()
    again = HubRun("EleutherAI/pythia-tiny", tmp_path / "cache").checkpoint(0)
    np.testing.assert_array_equal(again.matrix("qkv", 0), state[again.tensor_name("qkv", 0)].numpy())
    assert fake_hub.requests("cdn") and json.loads(path.read_text())["version"] == checkpoint.META_VERSION

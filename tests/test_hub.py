"""Hub runs: branch rules, pinned commits, byte-range reads, caches and offline use.

The hub's API is replaced by its recorded answer (tests/fixtures) and its file system by
fsspec's HTTP file system against a local Range server: no network here."""

import json
from pathlib import Path

import numpy as np
import pytest
from fsspec.implementations.http import HTTPFileSystem
from huggingface_hub.hf_api import GitRefInfo, GitRefs

from analysis.checkpoints import CheckpointError
from analysis.checkpoints.hub import KNOWN_BAD_STEPS, SUITE_RULES, HubRun, rule_for, steps_from_branches
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

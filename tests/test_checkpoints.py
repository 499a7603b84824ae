import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from analysis import config
from analysis.checkpoints import Checkpoint, CheckpointError, Run, describe, open_runs, select_steps, tiny
from analysis.config import DEFAULTS


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A run of two saved checkpoints of a small random GPT-NeoX model."""
    root = tmp_path_factory.mktemp("run")
    cfg = GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, rotary_pct=0.25, use_parallel_residual=True)
    for step in (0, 10):
        torch.manual_seed(step)
        GPTNeoXForCausalLM(cfg).save_pretrained(root / f"step{step}", safe_serialization=True)
    return root


def test_run_lists_steps_and_reads_role_matrices(run_folder):
    run = Run("r", run_folder)
    assert run.steps == [0, 10]
    assert run.middle_block() == 2
    ck = run.checkpoint(10)
    assert ck.matrix("qkv", 2).shape == (96, 32)  # (out, in): 3 * d rows
    assert ck.matrix("mlp_in", 2).shape == (128, 32)
    assert ck.matrix("mlp_out", 2).shape == (32, 128)
    assert len(ck.content_hash) == 64
    assert ck.content_hash != run.checkpoint(0).content_hash


def test_missing_step_role_and_block_are_named(run_folder):
    run = Run("r", run_folder)
    with pytest.raises(CheckpointError, match="run 'r' has no step 5; it has \\[0, 10\\]"):
        run.checkpoint(5)
    with pytest.raises(KeyError, match="unknown role"):
        run.checkpoint(0).matrix("ffn", 0)
    with pytest.raises(IndexError, match="block 4 does not exist"):
        run.checkpoint(0).matrix("qkv", 4)


def test_folder_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no weights \\(expected one of model.safetensors"):
        Checkpoint(tmp_path, 0)
    with pytest.raises(CheckpointError, match="no step<N> folders"):
        Run("empty", tmp_path)


def test_corrupt_safetensors_names_the_file(run_folder, tmp_path):
    bad = tmp_path / "step0"
    shutil.copytree(run_folder / "step0", bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[:64])  # header cut short
    with pytest.raises(CheckpointError, match=r"model.safetensors: header length \d+ runs beyond the file's 64 bytes"):
        Checkpoint(bad, 0).matrix("qkv", 0)
    (bad / "model.safetensors").write_bytes(b"\xff" * 8 + data[8:])  # header length beyond the file
    with pytest.raises(CheckpointError, match=r"model.safetensors"):
        Checkpoint(bad, 0).matrix("qkv", 0)


def settings(tmp_path, suite: str, runs: dict) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(suite=suite, runs=runs, root=str(tmp_path), cache_dir=str(tmp_path / "cache"), folder="suite")
    return cfg


def test_open_runs_gives_each_run_its_role_in_role_order(run_folder, tmp_path):
    for name in ("b-ref", "a-dedup", "c-seed2", "d-seed3"):
        shutil.copytree(run_folder, tmp_path / "suite" / name)
    cfg = settings(tmp_path, "folder", {"reference": "b-ref", "treatment": "a-dedup", "replicas": ["d-seed3", "c-seed2"]})
    runs = open_runs(cfg)
    assert list(runs) == ["b-ref", "a-dedup", "d-seed3", "c-seed2"]
    assert [r.role for r in runs.values()] == ["reference", "treatment", "replica", "replica"]
    no_treatment = settings(tmp_path, "folder", {"reference": "b-ref", "treatment": None, "replicas": []})
    assert {n: r.role for n, r in open_runs(no_treatment).items()} == {"b-ref": "reference"}


def test_hub_runs_are_keyed_by_the_repos_name_with_their_roles(tmp_path, monkeypatch):
    cfg = settings(tmp_path, "hub", {"reference": "EleutherAI/pythia-70m", "treatment": "EleutherAI/pythia-70m-deduped",
                                     "replicas": []})
    for repo in config.run_roles(cfg):  # branches from the cache: no network
        refs = Path(cfg["cache_dir"]) / "hub" / repo.replace("/", "--") / "refs.json"
        refs.parent.mkdir(parents=True)
        refs.write_text(json.dumps([{"name": "step0", "target_commit": "0" * 40}]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runs = open_runs(cfg)
    assert {n: (r.repo, r.role) for n, r in runs.items()} == {
        "pythia-70m": ("EleutherAI/pythia-70m", "reference"),
        "pythia-70m-deduped": ("EleutherAI/pythia-70m-deduped", "treatment")}
    clash = settings(tmp_path, "hub", {"reference": "EleutherAI/pythia-70m", "treatment": "someone/pythia-70m", "replicas": []})
    refs = Path(cfg["cache_dir"]) / "hub" / "someone--pythia-70m" / "refs.json"
    refs.parent.mkdir(parents=True)
    refs.write_text(json.dumps([{"name": "step0", "target_commit": "0" * 40}]))
    with pytest.raises(CheckpointError, match="two runs are both named 'pythia-70m'"):
        open_runs(clash)


def test_describe_rows_carry_the_role_and_the_tiny_manifest_entry(run_folder, tmp_path):
    cfg = settings(tmp_path, "tiny", {"reference": "raw", "treatment": "deduped", "replicas": ["raw-seed2"]})
    folder = Path(cfg["cache_dir"]) / "tiny-suite" / tiny.suite_key(cfg["tiny"])  # as if trained already
    for name in ("raw", "deduped", "raw-seed2"):
        shutil.copytree(run_folder, folder / name)
    entries = {"raw": {"documents": 77, "tokens": 900, "data": "raw", "seed": 1234},
               "deduped": {"documents": 42, "tokens": 500, "data": "deduped", "seed": 1234}}
    (folder / "manifest.json").write_text(json.dumps({"runs": entries}))
    rows = describe(cfg)
    assert [(r["run"], r["role"]) for r in rows] == [("raw", "reference"), ("deduped", "treatment"), ("raw-seed2", "replica")]
    assert rows[1] == {"run": "deduped", "role": "treatment", "checkpoints": 2, "last step": 10, "blocks": 4,
                       "documents": 42, "tokens": 500, "data": "deduped", "seed": 1234}
    assert "documents" not in rows[2]  # nothing recorded: nothing invented


def test_select_steps_names_what_is_missing(run_folder):
    run = Run("r", run_folder)
    assert select_steps(run, "all") == [0, 10]
    with pytest.raises(config.ConfigError, match=r"analysis.steps: run 'r' has no step\(s\) \[5\]"):
        select_steps(run, [0, 5])


def test_the_package_face_re_exports_and_importing_hub_first_does_not_loop():
    import subprocess
    import sys

    # hub.py imports checkpoint.py directly; importing it first must not loop through __init__.
    code = "import analysis.checkpoints.hub, analysis.checkpoints as c; print(c.Checkpoint.__module__, c.open_runs.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["analysis.checkpoints.checkpoint", "analysis.checkpoints.suite"]

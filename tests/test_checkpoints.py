import pytest
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from analysis.checkpoints import Checkpoint, CheckpointError, Run


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
    import shutil

    bad = tmp_path / "step0"
    shutil.copytree(run_folder / "step0", bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[:64])  # header cut short
    with pytest.raises(CheckpointError, match=r"model.safetensors: header length \d+ runs beyond the file's 64 bytes"):
        Checkpoint(bad, 0).matrix("qkv", 0)
    (bad / "model.safetensors").write_bytes(b"\xff" * 8 + data[8:])  # header length beyond the file
    with pytest.raises(CheckpointError, match=r"model.safetensors"):
        Checkpoint(bad, 0).matrix("qkv", 0)

"""Bytes moved to read one block's four matrices over HTTP Range requests, against the
bytes of the tensors asked for and against the whole file, for a checkpoint with
pythia-70m's proportions (fp16, 6 blocks of width 512, vocabulary 50304) served locally.

    python benchmarks/bytes_moved.py
"""

import sys
import tempfile
from pathlib import Path

import fsspec
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.architectures import middle_block  # noqa: E402
from analysis.checkpoints import Checkpoint  # noqa: E402
from analysis.testing.http_range_server import RangeServer  # noqa: E402

ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")


def main():
    cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=512, num_hidden_layers=6, num_attention_heads=8,
                        intermediate_size=2048, rotary_pct=0.25, use_parallel_residual=True)
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(cfg).half()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model.save_pretrained(root / "safetensors", safe_serialization=True)
        (root / "bin").mkdir()
        (root / "bin" / "config.json").write_text((root / "safetensors" / "config.json").read_text())
        torch.save(model.state_dict(), root / "bin" / "pytorch_model.bin")  # zip of stored members
        with RangeServer(root) as srv:
            fs = fsspec.filesystem("http")
            print(f"{'file':22s} {'file MB':>8s} {'asked MB':>9s} {'moved MB':>9s} {'moved/asked':>12s} {'moved/file':>11s}")
            for fmt in ("safetensors", "bin"):
                srv.reset()
                ck = Checkpoint(f"{srv.url}/{fmt}", 0, fs=fs)
                block = middle_block(ck.n_layers)
                asked = sum(ck.matrix(role, block).nbytes for role in ROLES)
                moved = srv.file_bytes
                size = fs.size(f"{srv.url}/{fmt}/{ck.weights_file}")
                print(f"{ck.weights_file:22s} {size / 1e6:8.1f} {asked / 1e6:9.2f} {moved / 1e6:9.2f} {moved / asked:12.4f} "
                      f"{moved / size:11.4f}")


if __name__ == "__main__":
    main()

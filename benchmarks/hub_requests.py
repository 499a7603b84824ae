"""HTTP requests, bytes and wall time to read Pythia-shaped checkpoints from the hub, by
format, against downloading the weights; and what the pythia profile moves per run.

A fake hub on 127.0.0.1 (analysis.testing.fake_hub) answers huggingface_hub's own client
(HfApi, HfFileSystem, hf_hub_download) as the hub does: LFS files resolve with a 302 to a
second server, the "CDN", that serves Range requests. Every answer waits `--latency`
seconds (default 50 ms). Checkpoints have pythia-1b's tensors, names, dtypes (fp16) and
order, with zero values on sparse files (so little disk is used): one safetensors file (as
`save_pretrained` writes it), a torch `.bin` (as the original Pythia branches hold it, with
the attention mask buffers) and safetensors in 1 GB shards. Counts are for a cold start: the
run's branch list, the checkpoint's listing, config and index, then the tensors.

    python benchmarks/hub_requests.py [--latency 0.05] [--profile-only]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.audit import pythia_schedule  # noqa: E402
from analysis.checkpoints.suite import depth_steps  # noqa: E402
from analysis.testing.fake_hub import FakeHub, point_client_at  # noqa: E402

ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")
SHAPES = {  # GPT-NeoX sizes of the Pythia models used here
    "pythia-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=8, intermediate_size=8192),
    "pythia-410m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}
VOCAB, CONTEXT = 50304, 2048


def layout(shape: dict, mask_buffers: bool) -> list[tuple[str, str, tuple]]:
    """(name, safetensors dtype, shape) in GPT-NeoX's state-dict order; `mask_buffers`: the
    causal-mask buffers older transformers saved with each block (Pythia's .bin files)."""
    d, f = shape["hidden_size"], shape["intermediate_size"]
    out = [("gpt_neox.embed_in.weight", "F16", (VOCAB, d))]
    for b in range(shape["num_hidden_layers"]):
        p = f"gpt_neox.layers.{b}."
        out += [(p + "input_layernorm.weight", "F16", (d,)), (p + "input_layernorm.bias", "F16", (d,)),
                (p + "post_attention_layernorm.weight", "F16", (d,)), (p + "post_attention_layernorm.bias", "F16", (d,))]
        if mask_buffers:
            out += [(p + "attention.bias", "BOOL", (1, 1, CONTEXT, CONTEXT)), (p + "attention.masked_bias", "F32", ()),
                    (p + "attention.rotary_emb.inv_freq", "F32", (d // shape["num_attention_heads"] // 8,))]
        out += [(p + "attention.query_key_value.weight", "F16", (3 * d, d)), (p + "attention.query_key_value.bias", "F16", (3 * d,)),
                (p + "attention.dense.weight", "F16", (d, d)), (p + "attention.dense.bias", "F16", (d,)),
                (p + "mlp.dense_h_to_4h.weight", "F16", (f, d)), (p + "mlp.dense_h_to_4h.bias", "F16", (f,)),
                (p + "mlp.dense_4h_to_h.weight", "F16", (d, f)), (p + "mlp.dense_4h_to_h.bias", "F16", (d,))]
    return out + [("gpt_neox.final_layer_norm.weight", "F16", (d,)), ("gpt_neox.final_layer_norm.bias", "F16", (d,)),
                  ("embed_out.weight", "F16", (VOCAB, d))]


ITEMSIZE = {"F16": 2, "F32": 4, "BOOL": 1}


def nbytes(dtype, shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) * ITEMSIZE[dtype]


def write_safetensors(path: Path, tensors) -> None:
    """The safetensors layout (tensors sorted by dtype size, then name; 8-byte aligned header),
    zeros left as holes in a sparse file."""
    order = sorted(tensors, key=lambda t: (-ITEMSIZE[t[1]], t[0]))
    header, pos = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in order:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes(dtype, shape)]}
        pos += nbytes(dtype, shape)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        f.truncate(8 + len(raw) + pos)


def write_bin(path: Path, tensors) -> None:
    """torch.save of zero tensors, then the zeros turned into holes (fallocate --dig-holes)."""
    import torch

    dtypes = {"F16": torch.float16, "F32": torch.float32, "BOOL": torch.bool}
    torch.save({name: torch.zeros(shape, dtype=dtypes[dtype]) for name, dtype, shape in tensors}, path)
    subprocess.run(["fallocate", "--dig-holes", str(path)], check=False)


def write_checkpoint(folder: Path, shape: dict, kind: str) -> None:
    from transformers import GPTNeoXConfig

    folder.mkdir(parents=True)
    cfg = GPTNeoXConfig(vocab_size=VOCAB, rotary_pct=0.25, use_parallel_residual=True, max_position_embeddings=CONTEXT,
                        torch_dtype="float16", **shape)
    (folder / "config.json").write_text(cfg.to_json_string())
    if kind == "bin":
        write_bin(folder / "pytorch_model.bin", layout(shape, mask_buffers=True))
    elif kind == "safetensors":
        write_safetensors(folder / "model.safetensors", layout(shape, mask_buffers=False))
    else:  # shards of at most 1 GB, filled in state-dict order as save_pretrained does
        shards, size = [[]], 0
        for t in layout(shape, mask_buffers=False):
            if shards[-1] and size + nbytes(t[1], t[2]) > 1 << 30:
                shards.append([])
                size = 0
            shards[-1].append(t)
            size += nbytes(t[1], t[2])
        weight_map = {}
        for i, part in enumerate(shards):
            name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(folder / name, part)
            weight_map.update({t[0]: name for t in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def cold_read(hub: FakeHub, repo: str, step: int, blocks, cache: Path) -> dict:
    """Open the run and read `blocks`' four matrices from a cold cache: requests and bytes."""
    from huggingface_hub import HfFileSystem

    from analysis.checkpoints.hub import HubRun

    shutil.rmtree(cache, ignore_errors=True)
    HfFileSystem.clear_instance_cache()  # no listing left over from an earlier measurement
    hub.reset()
    t0 = time.perf_counter()
    run = HubRun(repo, cache)
    ck = run.checkpoint(step)
    ck.prefetch([(role, b) for b in blocks for role in ROLES])
    seconds = time.perf_counter() - t0
    asked = sum(int(np.load(p, mmap_mode="r").nbytes) for p in (cache / "tensors").rglob("*.npy"))
    log = hub.requests()
    return {"requests": len(log), "resolves": sum("/resolve/" in r["path"] for r in log),
            "refs": sum(r["path"].endswith("/refs") for r in log),
            "api": sum(r["path"].startswith("/api/") for r in log), "bytes": sum(r["bytes"] for r in log),
            "asked": asked, "seconds": seconds}


def download(hub: FakeHub, repo: str, commit: str, files: list[str], dest: Path) -> dict:
    """hf_hub_download of the weights files (what a full-model loader fetches)."""
    from huggingface_hub import hf_hub_download

    shutil.rmtree(dest, ignore_errors=True)
    hub.reset()
    t0 = time.perf_counter()
    for f in files:
        hf_hub_download(repo, f, revision=commit, cache_dir=str(dest))
    seconds = time.perf_counter() - t0
    log = hub.requests()
    shutil.rmtree(dest, ignore_errors=True)
    return {"requests": len(log), "bytes": sum(r["bytes"] for r in log), "seconds": seconds}


WEIGHTS = {"safetensors": ["model.safetensors"], "bin": ["pytorch_model.bin"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--profile-only", action="store_true", help="only the pythia profile's per-run numbers")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hub = FakeHub(latency=args.latency)
        with hub:
            point_client_at(hub.url)
            from huggingface_hub import HfApi
            models = [] if args.profile_only else [("pythia-1b", k) for k in ("safetensors", "bin", "sharded")]
            models += [("pythia-410m", k) for k in ("safetensors", "bin")]
            rows, per_ckpt = [], {}
            for model, kind in models:
                folder = tmp / "src" / f"{model}-{kind}"
                write_checkpoint(folder, SHAPES[model], kind)
                repo = f"EleutherAI/{model}-{kind}"
                commit = hub.add(repo, "step143000", folder)
                hub.add(repo, "main", folder)
                HfApi().list_repo_refs(repo)  # the client's one-off calls happen on first use: not counted
                n_layers = SHAPES[model]["num_hidden_layers"]
                mid = cold_read(hub, repo, 143000, [n_layers // 2], tmp / "cache")
                every = cold_read(hub, repo, 143000, range(n_layers), tmp / "cache")
                files = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
                full = download(hub, repo, commit, files, tmp / "dl")
                size = sum((folder / f).stat().st_size for f in files)
                per_ckpt[(model, kind)] = (mid, every)
                for what, m in (("middle block", mid), ("all blocks", every)):
                    rows.append((model, kind, what, m, full, size))
                shutil.rmtree(folder)
                shutil.rmtree(tmp / "cache", ignore_errors=True)
                hub.repos.pop(repo)
                hub.blobs.clear()
    print(f"latency {args.latency * 1000:.0f} ms per response (hub and CDN); cold cache; requests = API + resolve + CDN\n")
    print("| model | format | read | requests (API/resolve/CDN) | MB moved | MB asked | moved/asked | s | download: requests | MB | s | bytes vs download | time vs download |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model, kind, what, m, full, size in rows:
        cdn = m["requests"] - m["api"] - m["resolves"]
        print(f"| {model} | {kind} | {what} | {m['requests']} ({m['api']}/{m['resolves']}/{cdn}) | {m['bytes'] / 1e6:.1f} | "
              f"{m['asked'] / 1e6:.1f} | {m['bytes'] / m['asked']:.4f} | {m['seconds']:.2f} | {full['requests']} | "
              f"{full['bytes'] / 1e6:.0f} | {full['seconds']:.2f} | {m['bytes'] / full['bytes']:.3f}× | "
              f"{m['seconds'] / full['seconds']:.3f}× |")
    steps = pythia_schedule()
    deep = depth_steps("auto", "hub", steps)
    print(f"\npythia profile, per run (pythia-410m, {len(steps)} steps, every block at {len(deep)} of them: {deep}),"
          " measured per checkpoint above, cold cache:")
    print("| format of the step branches | requests | of which resolve | MB | minutes at this latency |")
    print("| --- | --- | --- | --- | --- |")
    for kind in ("safetensors", "bin"):
        if ("pythia-410m", kind) not in per_ckpt:
            continue
        mid, every = per_ckpt[("pythia-410m", kind)]
        n_mid, n_all = len(steps) - len(deep), len(deep)
        # the branch list is asked for once per run, not per checkpoint
        req = 1 + n_mid * (mid["requests"] - mid["refs"]) + n_all * (every["requests"] - every["refs"])
        res = n_mid * mid["resolves"] + n_all * every["resolves"]
        mb = (n_mid * mid["bytes"] + n_all * every["bytes"]) / 1e6
        minutes = (n_mid * mid["seconds"] + n_all * every["seconds"]) / 60
        print(f"| {kind} | {req} | {res} | {mb:.0f} | {minutes:.1f} |")


if __name__ == "__main__":
    main()

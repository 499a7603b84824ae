"""HTTP requests, bytes and wall time to read Pythia-shaped checkpoints from the hub, by
format, against downloading the weights; and what the pythia profile moves per run.

A fake hub on 127.0.0.1 (analysis.testing.fake_hub) answers huggingface_hub's own client
(HfApi, HfFileSystem, hf_hub_download) as the hub does: LFS files resolve with a 302 to a
second server, the "CDN", that serves Range requests. Every answer waits `--latency`
seconds (default 50 ms). Checkpoints have a Pythia model's tensors, names, dtypes (fp16) and
order, filled with random values (so that a byte taken from the wrong offset shows: every
tensor read is compared with the source file, through safetensors and torch): one
safetensors file (as `save_pretrained` writes it), a torch `.bin` (as the original Pythia
branches hold it, with the attention mask buffers) and safetensors in shards.

Both paths start cold and alike: the run's branch list (refs), then ours the checkpoint's
listing, config and index and the tensors, the download the config and the weights files
(hf_hub_download, what a full-model loader fetches). Each is timed best of `--repeat`.
The real hub serves Xet-backed files through hf_xet's parallel chunked transfer, which the
fake hub does not emulate: the download baseline here is plain HTTP, one stream per file.

    python benchmarks/hub_requests.py [--latency 0.05] [--models pythia-410m] [--repeat 3]
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from analysis.audit import pythia_schedule  # noqa: E402
from analysis.checkpoints.suite import depth_steps  # noqa: E402
from analysis.testing.fake_hub import FakeHub, point_client_at  # noqa: E402

ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")
SHAPES = {  # GPT-NeoX sizes of the Pythia models used here
    "pythia-1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=8, intermediate_size=8192),
    "pythia-410m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "pythia-160m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
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


TORCH = {"F16": torch.float16, "F32": torch.float32, "BOOL": torch.bool}


def random_tensor(name: str, dtype: str, shape) -> torch.Tensor:
    """Random values, seeded by the name (the same in every format)."""
    g = torch.Generator().manual_seed(int.from_bytes(name.encode()[-8:], "little") % (1 << 62))
    if dtype == "BOOL":
        return torch.rand(shape, generator=g) < 0.5
    return (0.02 * torch.randn(shape, generator=g)).to(TORCH[dtype])


def write_safetensors(path: Path, tensors) -> None:
    """The safetensors layout (tensors sorted by dtype size, then name; 8-byte aligned header)."""
    order = sorted(tensors, key=lambda t: (-ITEMSIZE[t[1]], t[0]))
    header, pos = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in order:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes(dtype, shape)]}
        pos += nbytes(dtype, shape)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for name, dtype, shape in order:
            f.write(random_tensor(name, dtype, shape).numpy().tobytes())


def write_bin(path: Path, tensors) -> None:
    torch.save({name: random_tensor(name, dtype, shape) for name, dtype, shape in tensors}, path)


def write_checkpoint(folder: Path, shape: dict, kind: str, shard_bytes: int = 1 << 30) -> None:
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
            if shards[-1] and size + nbytes(t[1], t[2]) > shard_bytes:
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


def best_of(n: int, measure) -> dict:
    """The fastest of n runs of measure() -> {..., seconds} (the same requests each time)."""
    runs = [measure() for _ in range(n)]
    out = min(runs, key=lambda m: m["seconds"])
    return {**out, "all_seconds": [m["seconds"] for m in runs]}


def source_tensors(folder: Path) -> dict:
    """{name: bytes} of every tensor in the checkpoint, read by safetensors / torch."""
    from safetensors import safe_open

    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix == ".safetensors":
            with safe_open(p, framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in f.keys()})
        elif p.suffix == ".bin":
            out.update(torch.load(p, map_location="cpu", weights_only=True, mmap=True))
    return out


def cold_read(hub: FakeHub, repo: str, step: int, blocks, cache: Path, source: dict | None = None) -> dict:
    """Open the run and read `blocks`' four matrices from a cold cache: requests, bytes, and
    (with `source`) every tensor read checked byte for byte against it."""
    from huggingface_hub import HfFileSystem

    from analysis.checkpoints.hub import HubRun

    shutil.rmtree(cache, ignore_errors=True)
    HfFileSystem.clear_instance_cache()  # no listing left over from an earlier measurement
    hub.reset()
    t0 = time.perf_counter()
    run = HubRun(repo, cache)
    ck = run.checkpoint(step)
    pairs = [(role, b) for b in blocks for role in ROLES]
    ck.prefetch(pairs)
    seconds = time.perf_counter() - t0
    asked = sum(int(np.load(p, mmap_mode="r").nbytes) for p in (cache / "tensors").rglob("*.npy"))
    log = hub.requests()
    if source is not None:
        from analysis.architectures import tensor_names

        for name in {n for r, b in pairs for n in tensor_names(ck.architecture, r, b, ck.n_layers)}:
            got = np.load(ck.tensor_cache.path(ck.cache_id, name))
            if got.tobytes() != source[name].contiguous().numpy().tobytes():
                raise AssertionError(f"{repo}: tensor {name!r} read back differs from the source file")
    return {"requests": len(log), "resolves": sum("/resolve/" in r["path"] for r in log),
            "refs": sum(r["path"].endswith("/refs") for r in log),
            "api": sum(r["path"].startswith("/api/") for r in log), "bytes": sum(r["bytes"] for r in log),
            "asked": asked, "seconds": seconds}


def download(hub: FakeHub, repo: str, files: list[str], dest: Path) -> dict:
    """The run's branch list, then hf_hub_download of config.json and the weights files at the
    branch's commit (what a full-model loader fetches), from cold."""
    from huggingface_hub import HfApi, hf_hub_download

    shutil.rmtree(dest, ignore_errors=True)
    hub.reset()
    t0 = time.perf_counter()
    refs = HfApi().list_repo_refs(repo)
    commit = next(b.target_commit for b in refs.branches if b.name == "step143000")
    for f in ["config.json", *files]:
        hf_hub_download(repo, f, revision=commit, cache_dir=str(dest))
    seconds = time.perf_counter() - t0
    log = hub.requests()
    shutil.rmtree(dest, ignore_errors=True)
    return {"requests": len(log), "bytes": sum(r["bytes"] for r in log), "seconds": seconds,
            "refs": sum(r["path"].endswith("/refs") for r in log)}


WEIGHTS = {"safetensors": ["model.safetensors"], "bin": ["pytorch_model.bin"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--models", nargs="+", default=["pythia-410m"], choices=sorted(SHAPES),
                    help="model shapes to measure (pythia-1b: 2 GB of random data per format)")
    ap.add_argument("--repeat", type=int, default=3, help="time each path best of this many")
    ap.add_argument("--shard-mb", type=int, default=300, help="shard size of the sharded format")
    ap.add_argument("--chunk-mb", type=int, default=None, help="split ranges into chunks of this size (default: the reader's)")
    args = ap.parse_args()
    from analysis.checkpoints import checkpoint

    if args.chunk_mb:
        checkpoint.CHUNK_BYTES = args.chunk_mb << 20

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hub = FakeHub(latency=args.latency)
        with hub:
            point_client_at(hub.url)
            from huggingface_hub import HfApi
            rows, per_ckpt = [], {}
            for model in args.models:
                for kind in ("safetensors", "bin", "sharded"):
                    folder = tmp / "src" / f"{model}-{kind}"
                    write_checkpoint(folder, SHAPES[model], kind, args.shard_mb << 20)
                    source = source_tensors(folder)
                    repo = f"EleutherAI/{model}-{kind}"
                    hub.add(repo, "step143000", folder)
                    hub.add(repo, "main", folder)
                    HfApi().list_repo_refs(repo)  # the client's one-off calls happen on first use: not counted
                    n_layers = SHAPES[model]["num_hidden_layers"]
                    mid = best_of(args.repeat, lambda: cold_read(hub, repo, 143000, [n_layers // 2], tmp / "cache", source))
                    every = best_of(args.repeat, lambda: cold_read(hub, repo, 143000, range(n_layers), tmp / "cache", source))
                    files = sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
                    full = best_of(args.repeat, lambda: download(hub, repo, files, tmp / "dl"))
                    per_ckpt[(model, kind)] = (mid, every, full)
                    for what, m in (("middle block", mid), ("all blocks", every)):
                        rows.append((model, kind, what, m, full))
                    del source
                    shutil.rmtree(folder)
                    shutil.rmtree(tmp / "cache", ignore_errors=True)
                    hub.repos.pop(repo)
                    hub.blobs.clear()
    print(f"latency {args.latency * 1000:.0f} ms per response (hub and CDN); cold cache, refs included on both paths; "
          f"requests = API + resolve + CDN; time: best of {args.repeat}; random fp16 values, every tensor read compared "
          f"byte for byte with the source (all equal); shards of {args.shard_mb} MB; ranges split into "
          f"{checkpoint.CHUNK_BYTES >> 20} MiB chunks, {checkpoint.FETCH_WORKERS} at a time, in batches of "
          f"{checkpoint.BATCH_BYTES >> 20} MiB of tensors")
    print("The download baseline is plain HTTP, one stream per file: the real hub serves Xet-backed files through "
          "hf_xet's parallel chunked transfer, which this fake hub does not emulate, so on the real hub a download "
          "can be faster than here.\n")
    print("| model | format | read | requests (API/resolve/CDN) | MB moved | MB asked | moved/asked | s (best; all) | "
          "download: requests | MB | s (best) | bytes vs download | time vs download |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model, kind, what, m, full in rows:
        cdn = m["requests"] - m["api"] - m["resolves"]
        runs = ", ".join(f"{x:.2f}" for x in m["all_seconds"])
        print(f"| {model} | {kind} | {what} | {m['requests']} ({m['api']}/{m['resolves']}/{cdn}) | {m['bytes'] / 1e6:.1f} | "
              f"{m['asked'] / 1e6:.1f} | {m['bytes'] / m['asked']:.4f} | {m['seconds']:.2f} ({runs}) | {full['requests']} | "
              f"{full['bytes'] / 1e6:.0f} | {full['seconds']:.2f} | {m['bytes'] / full['bytes']:.3f}× | "
              f"{m['seconds'] / full['seconds']:.2f}× |")
    steps = pythia_schedule()
    deep = depth_steps("auto", "hub", steps)
    n_act = 8  # activation_steps "auto" on the hub: 8 log-spaced steps, each a whole model downloaded
    for model in args.models:
        print(f"\npythia profile, per run ({model} shapes, {len(steps)} steps, every block at {len(deep)} of them: {deep}; "
              f"whole models for the activation histograms at {n_act} steps), from the per-checkpoint numbers above, cold cache:")
        print("| format of the step branches | weight reads: requests | of which resolve | MB | activation models: "
              "requests | MB | total MB | minutes at this latency |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for kind in ("safetensors", "bin", "sharded"):
            if (model, kind) not in per_ckpt:
                continue
            mid, every, full = per_ckpt[(model, kind)]
            n_mid, n_all = len(steps) - len(deep), len(deep)
            # the branch list is asked for once per run, not per checkpoint
            req = 1 + n_mid * (mid["requests"] - mid["refs"]) + n_all * (every["requests"] - every["refs"])
            res = n_mid * mid["resolves"] + n_all * every["resolves"]
            mb = (n_mid * mid["bytes"] + n_all * every["bytes"]) / 1e6
            act_req, act_mb = n_act * (full["requests"] - full["refs"]), n_act * full["bytes"] / 1e6
            minutes = (n_mid * mid["seconds"] + n_all * every["seconds"] + n_act * full["seconds"]) / 60
            print(f"| {kind} | {req} | {res} | {mb:.0f} | {act_req} | {act_mb:.0f} | {mb + act_mb:.0f} | {minutes:.1f} |")


if __name__ == "__main__":
    main()

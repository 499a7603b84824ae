"""Train the tiny suite: a byte-level BPE tokenizer and one GPT-NeoX run per `tiny.runs` entry.

Pythia's recipe at toy scale: parallel residual, partial rotary (0.25), AdamW with linear
warm-up and cosine decay, checkpoints at steps 0, 1, 2, 4, ..., 512, then evenly spaced.
Every run shares the tokenizer, the schedule and the hyper-parameters; a run's corpus is all
documents (`data: raw`) or the near-duplicate-filtered ones (`data: deduped`), and its seed
fixes both the initial weights and the random batch positions. So two runs with the same
seed differ only in their data, and two runs on the same data with different seeds (a
replica and its reference) differ only in initialisation and data order. Everything is seeded and single-process, so two
builds give bit-identical checkpoint files; a file lock keeps two processes from training
the same suite at once.
"""

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from filelock import FileLock, Timeout
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm  # plain: the notebook widget variant needs ipywidgets
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from ...files import atomic_dir
from . import corpus, dedup
from .layout import checkpoint_steps, suite_key

EOS = "<|endoftext|>"
TORCH_THREADS = 2  # fixed, not "all cores": float reductions must not depend on the machine


def learning_rate(step: int, cfg: dict) -> float:
    """Linear warm-up to lr, then cosine decay to min_lr at the last step."""
    if step < cfg["warmup_steps"]:
        return cfg["lr"] * (step + 1) / cfg["warmup_steps"]
    frac = (step - cfg["warmup_steps"]) / max(cfg["train_steps"] - cfg["warmup_steps"], 1)
    return cfg["min_lr"] + 0.5 * (cfg["lr"] - cfg["min_lr"]) * (1 + math.cos(math.pi * min(frac, 1.0)))


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode(tok: Tokenizer, texts: list[str]) -> np.ndarray:
    """One stream of token ids, documents separated by EOS. -> (n_tokens,) int64"""
    eos = tok.token_to_id(EOS)
    ids = []
    for enc in tok.encode_batch(texts):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


def model_config(cfg: dict, vocab_size: int) -> GPTNeoXConfig:
    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=cfg["d_model"],
        num_hidden_layers=cfg["n_layer"],
        num_attention_heads=cfg["n_head"],
        intermediate_size=4 * cfg["d_model"],
        rotary_pct=0.25,
        use_parallel_residual=True,
        max_position_embeddings=cfg["seq_len"],
        tie_word_embeddings=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )


def batch_offsets(n_tokens: int, cfg: dict, seed: int) -> np.ndarray:
    """(train_steps, batch_size) start positions: the data order, fixed by the run's seed."""
    rng = np.random.default_rng(seed)
    u = rng.random((cfg["train_steps"], cfg["batch_size"]))
    return (u * (n_tokens - cfg["seq_len"])).astype(np.int64)


def train_run(name: str, tokens: np.ndarray, cfg: dict, seed: int, vocab_size: int, out: Path) -> list[dict]:
    """Train one run, saving `out/step{N}/` at the checkpoint steps; returns the loss log.

    `seed` fixes the initial weights and the batch positions; nothing else draws randomness."""
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(model_config(cfg, vocab_size))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"],
        betas=(0.9, 0.95),
    )
    save_at = set(checkpoint_steps(cfg["train_steps"], cfg["linear_every"]))
    offsets = batch_offsets(len(tokens), cfg, seed)
    window = np.arange(cfg["seq_len"])
    data = torch.from_numpy(tokens)
    log = []
    bar = tqdm(range(cfg["train_steps"] + 1), desc=f"train {name}", unit="step")
    for step in bar:
        if step in save_at:
            model.save_pretrained(out / f"step{step}", safe_serialization=True)
        if step == cfg["train_steps"]:
            break
        x = data[torch.from_numpy(offsets[step][:, None] + window)]  # (batch, seq_len)
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        loss = model(input_ids=x, labels=x).loss  # the model shifts labels by one inside
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        log.append({"step": step + 1, "loss": value, "lr": learning_rate(step, cfg)})
        bar.set_postfix(loss=f"{value:.3f}")
    return log


def lock_path(cfg: dict, cache_dir: Path) -> Path:
    """The lock file held while the suite for these settings is being built."""
    return Path(cache_dir) / "tiny-suite" / f"{suite_key(cfg)}.lock"


def build(cfg: dict, cache_dir: Path) -> Path:
    """The suite folder for these `tiny` settings; trained on first use, then reused.

    Layout: <run>/step{N}/ (config.json + model.safetensors) and <run>/train_log.json for
    every run in cfg["runs"], tokenizer.json, and manifest.json (written last: its presence
    means complete, and a complete folder is never replaced). A second process asking for
    the same suite while it is being trained waits for the lock, then reuses the result.
    """
    final = Path(cache_dir) / "tiny-suite" / suite_key(cfg)
    if (final / "manifest.json").is_file():
        return final
    path = lock_path(cfg, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"another process is training the tiny suite {final.name}; waiting for it to finish", file=sys.stderr)
        lock.acquire()
    try:
        if (final / "manifest.json").is_file():  # built by whoever held the lock before us
            return final
        return _train_suite(cfg, cache_dir, final)
    finally:
        lock.release()


def _train_suite(cfg: dict, cache_dir: Path, final: Path) -> Path:
    started = time.time()
    for stale in final.parent.glob(f".{final.name}.*.tmp"):  # left by a killed build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    docs = corpus.documents(corpus.fetch(cfg["corpus"], cache_dir), cfg["max_documents"])
    kept, dropped = dedup.deduplicate(docs, cfg["dedup_threshold"], cfg["dedup_shingle"], cfg["dedup_num_perm"])
    transformers.utils.logging.disable_progress_bar()  # one bar: ours
    torch.set_num_threads(TORCH_THREADS)
    torch.use_deterministic_algorithms(True)
    with atomic_dir(final) as out:
        tok = train_tokenizer(list(docs.values()), cfg["vocab_size"])  # on every document, shared by all runs
        tok.save(str(out / "tokenizer.json"))
        corpora = {"raw": list(docs), "deduped": kept}
        tokens = {data: encode(tok, [docs[n] for n in names]) for data, names in corpora.items()}
        manifest = {"settings": cfg, "runs": {}, "dropped_as_duplicates": dropped}
        for name, spec in cfg["runs"].items():
            data, seed = spec["data"], spec["seed"]
            run_started = time.time()
            log = train_run(name, tokens[data], cfg, seed, tok.get_vocab_size(), out / name)
            (out / name / "train_log.json").write_text(json.dumps(log))
            manifest["runs"][name] = {"documents": len(corpora[data]), "tokens": int(len(tokens[data])),
                                      "data": data, "seed": seed}
            manifest.setdefault("seconds_per_run", {})[name] = round(time.time() - run_started, 1)
        manifest["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
        manifest["seconds"] = round(time.time() - started, 1)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return final

"""Train the tiny suite: a byte-level BPE tokenizer and one GPT-NeoX run per `tiny.runs` entry.

Pythia's recipe at toy scale: parallel residual (or, per run, `arch: sequential`: GPT-2's
attention-then-MLP wiring on the same parameters), partial rotary (0.25), AdamW with linear
warm-up and cosine decay, checkpoints at steps 0, 1, 2, 4, ..., 512, then evenly spaced.
Every run shares the tokenizer, the schedule and the hyper-parameters; a run's corpus is all
documents (`data: raw`) or the near-duplicate-filtered ones (`data: deduped`), and its seed
fixes both the initial weights and the random batch positions. So two runs with the same
seed differ only in their data, and two runs on the same data with different seeds (a
replica and its reference) differ only in initialisation and data order. Everything is
seeded and each run trains on one torch thread in a process of its own, the missing runs side
by side (pool.py), so two builds give bit-identical checkpoint files. Each run and
the tokenizer are cached under their own key (layout.py) and built under their own file
lock, so two processes never train the same run, and adding a run trains only that run."""

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
from . import corpus, dedup, pool
from .layout import ARCHS, checkpoint_steps, run_key, run_spec, suite_key, tokenizer_key

EOS = "<|endoftext|>"
TORCH_THREADS = 1  # fixed, not "all cores": a run's float reductions must not depend on the machine (pool.py)


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


def model_config(cfg: dict, vocab_size: int, arch: str = "parallel") -> GPTNeoXConfig:
    """Pythia's block ("parallel": x + attn(ln1(x)) + mlp(ln2(x))) or GPT-2's wiring on the same
    parameters ("sequential": h = x + attn(ln1(x)), then h + mlp(ln2(h))): every name, shape,
    initialisation and optimiser setting is shared, only the order in the block differs."""
    if arch not in ARCHS:
        raise ValueError(f"tiny run architecture: expected one of {ARCHS}, got {arch!r}")
    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=cfg["d_model"],
        num_hidden_layers=cfg["n_layer"],
        num_attention_heads=cfg["n_head"],
        intermediate_size=4 * cfg["d_model"],
        rotary_pct=0.25,
        use_parallel_residual=arch == "parallel",
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


def train_run(name: str, tokens: np.ndarray, cfg: dict, spec: dict, vocab_size: int, out: Path | None,
              init=None, data_seed: int | None = None, at_step=None) -> list[dict]:
    """Train one run, saving `out/step{N}/` at the checkpoint steps; returns the loss log.

    spec: {seed, arch} (layout.run_spec). The seed fixes the initial weights and the batch
    positions; nothing else draws randomness, so a run does not depend on what else the
    process trained before it. Hooks for runs from other initialisations (inits.py):
    `init(model)` changes the standard initialisation in place before training;
    `data_seed` fixes the batch positions instead of the seed (one data order for runs
    whose seeds differ); `at_step(step, model)` is called before each step and after the
    last (no gradients are taken inside it); `out=None` saves no checkpoints. Trains on
    TORCH_THREADS threads, then gives the caller back its own thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    try:
        return _train_run(name, tokens, cfg, spec, vocab_size, out, init, data_seed, at_step)
    finally:
        torch.set_num_threads(previous)


def _train_run(name, tokens, cfg, spec, vocab_size, out, init, data_seed, at_step) -> list[dict]:
    seed = spec["seed"]
    transformers.utils.logging.disable_progress_bar()  # one bar: ours
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(model_config(cfg, vocab_size, spec["arch"]))
    if init is not None:
        with torch.no_grad():
            init(model)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"],
        betas=(0.9, 0.95),
    )
    save_at = set(checkpoint_steps(cfg["train_steps"], cfg["linear_every"], cfg.get("checkpoint_shares", ())))
    offsets = batch_offsets(len(tokens), cfg, seed if data_seed is None else data_seed)
    window = np.arange(cfg["seq_len"])
    data = torch.from_numpy(tokens)
    log = []
    bar = tqdm(range(cfg["train_steps"] + 1), desc=f"train {name}", unit="step", position=pool.slot())
    for step in bar:
        if step in save_at and out is not None:
            model.save_pretrained(out / f"step{step}", safe_serialization=True)
        if at_step is not None:
            with torch.no_grad():
                at_step(step, model)
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
    """The lock file held while the suite for these settings is being assembled."""
    return Path(cache_dir) / "tiny-suite" / f"{suite_key(cfg)}.lock"


def _locked(final: Path, done: str, make, what: str) -> Path:
    """`final`, made by make(tmp_folder) under `final`'s lock unless `final/done` exists.

    A finished folder is never replaced; a second process waits for the lock, then reuses it."""
    if (final / done).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(final.parent / f"{final.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"another process is building {what} {final.name}; waiting for it to finish", file=sys.stderr)
        lock.acquire()
    try:
        if (final / done).is_file():  # built by whoever held the lock before us
            return final
        for stale in final.parent.glob(f".{final.name}.*.tmp"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_dir(final) as out:
            make(out)
        return final
    finally:
        lock.release()


def build(cfg: dict, cache_dir: Path) -> Path:
    """The suite folder for these `tiny` settings; its missing runs trained first.

    Layout (layout.py): <suite>/<run> links to runs/<run_key>/ (step{N}/ with config.json and
    model.safetensors, train_log.json, run.json written last), <suite>/tokenizer.json links to
    tokenizers/<tokenizer_key>/, and <suite>/manifest.json, written last: its presence means
    complete, and a complete folder is never replaced. Runs and tokenizers are shared by every
    suite whose settings give them the same key, so adding a run trains only that run.
    """
    final = Path(cache_dir) / "tiny-suite" / suite_key(cfg)
    return _locked(final, "manifest.json", lambda out: _assemble(cfg, Path(cache_dir), out), "the tiny suite")


def train_locked(name: str, spec: dict, cfg: dict, cache_dir: str, tokens: np.ndarray, documents: int,
                 vocab_size: int) -> Path:
    """The folder of one run (run_spec), trained first under its lock unless it is there."""
    def train_into(folder):
        run_started = time.time()
        log = train_run(name, tokens, cfg, spec, vocab_size, folder)
        (folder / "train_log.json").write_text(json.dumps(log))
        record = {**spec, "documents": documents, "tokens": int(len(tokens)), "threads": TORCH_THREADS,
                  "seconds": round(time.time() - run_started, 1), "trained_as": name, "settings": cfg,
                  "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}
        (folder / "run.json").write_text(json.dumps(record, indent=1, sort_keys=True))

    root = Path(cache_dir) / "tiny-suite"
    return _locked(root / "runs" / run_key(cfg, spec), "run.json", train_into, f"tiny run {name!r}")


def _assemble(cfg: dict, cache_dir: Path, out: Path) -> None:
    started = time.time()
    root = cache_dir / "tiny-suite"
    docs = corpus.documents(corpus.fetch(cfg["corpus"], cache_dir), cfg["max_documents"])
    kept, dropped = dedup.deduplicate(docs, cfg["dedup_threshold"], cfg["dedup_shingle"], cfg["dedup_num_perm"])
    corpora = {"raw": list(docs), "deduped": kept}
    tok_dir = _locked(root / "tokenizers" / tokenizer_key(cfg), "tokenizer.json",
                      lambda d: train_tokenizer(list(docs.values()), cfg["vocab_size"]).save(str(d / "tokenizer.json")),
                      "the tokenizer")  # on every document, shared by all runs
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    tokens = {}  # data -> (n_tokens,), encoded only if a run on it is trained here
    (out / "tokenizer.json").symlink_to(Path("..") / "tokenizers" / tok_dir.name / "tokenizer.json")
    specs = {name: run_spec(spec) for name, spec in cfg["runs"].items()}
    jobs, labels = {}, []  # run key -> job: the missing runs, each once however many names it has
    for name, spec in specs.items():
        key = run_key(cfg, spec)
        if key in jobs or (root / "runs" / key / "run.json").is_file():
            continue
        if spec["data"] not in tokens:
            tokens[spec["data"]] = encode(tok, [docs[n] for n in corpora[spec["data"]]])
        jobs[key] = (name, spec, cfg, str(cache_dir), tokens[spec["data"]], len(corpora[spec["data"]]),
                     tok.get_vocab_size())
        labels.append(f"tiny run {name!r}")
    pool.run_all(train_locked, list(jobs.values()), labels)  # side by side, one thread each
    manifest = {"settings": cfg, "runs": {}, "dropped_as_duplicates": dropped, "seconds_per_run": {}}
    for name, spec in specs.items():
        run_dir = root / "runs" / run_key(cfg, spec)
        record = json.loads((run_dir / "run.json").read_text())
        (out / name).symlink_to(Path("..") / "runs" / run_dir.name)
        manifest["runs"][name] = {k: record[k] for k in ("data", "seed", "arch", "documents", "tokens")}
        manifest["runs"][name]["train seconds"] = record["seconds"]
        manifest["seconds_per_run"][name] = record["seconds"]  # when it was trained, by whichever suite
        manifest["versions"] = record["versions"]
    manifest["seconds"] = round(time.time() - started, 1)  # this assembly: training the missing runs only
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))

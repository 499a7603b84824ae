"""Short tiny runs from other initialisations (report/init-spectrum.qmd), cached like tiny runs.

Each run trains the suite's model with train.train_run (an `init` hook changes the standard
initialisation; every run shares one data order) on the raw corpus, for `init.train_steps`
steps of `init.batch_size`, and records the training loss and the loss on the shipped
held-out text at the evaluation steps, and the configured block's analysed matrices at the
log-spaced steps. A run lives in <cache>/tiny-suite/inits/<key>/, keyed by the settings it
trains with, the source weights, the init kind, its seed and whatever else its init draws
on (toy depths), built under its own file lock and moved into place whole (run.json written
last), so adding a kind or a seed trains only that run.
"""

import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from . import pool
from .layout import _digest, checkpoint_steps

INIT_RUNS_VERSION = 2  # bump when what a run folder holds changes; 2: trained on one torch thread


def run_settings(tiny: dict, init: dict) -> dict:
    """The tiny settings an init run trains with: the suite's model, tokenizer and optimiser;
    the init settings' length, batch and warm-up."""
    shared = {k: v for k, v in tiny.items() if k not in ("runs", "checkpoint_shares")}  # init runs keep no checkpoints
    return {**shared, **{k: init[k] for k in ("train_steps", "batch_size", "warmup_steps")}}


def eval_steps(train_steps: int, every: int) -> list[int]:
    """Where losses are recorded: the log-spaced steps and every `every` steps, last included."""
    return sorted(set(checkpoint_steps(train_steps, train_steps)) | set(range(0, train_steps + 1, every)))


def matrix_steps(train_steps: int) -> list[int]:
    """Where the analysed matrices are kept: 0, powers of two, the last step."""
    return checkpoint_steps(train_steps, train_steps)


def run_key(tiny: dict, init: dict, source: str, kind: str, seed: int, extra: dict, heldout_text: str,
            arch: str, data_seed: int) -> str:
    """Digest of what a run depends on: its training settings, the evaluation settings and
    held-out text, the source weights' content hash, the architecture and data order, the
    init kind and seed, `extra` (e.g. toy depths)."""
    return _digest({"version": INIT_RUNS_VERSION, "settings": run_settings(tiny, init),
                    "eval": {k: init[k] for k in ("eval_every", "eval_rows")},
                    "heldout": hashlib.sha256(heldout_text.encode()).hexdigest(), "source": source,
                    "arch": arch, "data_seed": data_seed, "kind": kind, "seed": seed, "extra": extra})


def heldout_rows(tok, text: str, seq_len: int, rows: int) -> np.ndarray:
    """(n, seq_len) token ids of the held-out text, n = min(rows, what the text holds)."""
    ids = np.asarray(tok.encode(text).ids, dtype=np.int64)
    n = min(rows, len(ids) // seq_len)
    if n == 0:
        raise ValueError(f"held-out text: {len(ids)} tokens; expected at least one row of {seq_len}")
    return ids[: n * seq_len].reshape(n, seq_len)


def train(cache_dir, tiny: dict, init: dict, suite: Path, source: str, arch: str, data_seed: int, kind: str,
          seed: int, init_fn, extra: dict, matrices: dict, heldout_text: str) -> Path:
    """The folder of one init run, trained first if it is not cached.

    suite: the tiny suite folder (its tokenizer); source: the source weights' content hash;
    data_seed: the batch positions every init run shares; init_fn: train_run's `init` hook
    (None: the standard init); matrices: {role: tensor name} kept at matrix_steps.
    Folder: log.json {train: [{step, loss}], heldout: [{step, loss}]}, matrices.npz
    ("{step}/{role}": (out, in) float32), run.json (seconds, written last)."""
    from .train import _locked

    final = Path(cache_dir) / "tiny-suite" / "inits" / run_key(tiny, init, source, kind, seed, extra, heldout_text,
                                                                arch, data_seed)
    return _locked(final, "run.json", lambda out: _make(out, tiny, init, suite, arch, data_seed, kind, seed, init_fn,
                                                         matrices, heldout_text, Path(cache_dir), extra),
                   f"init run {kind!r} seed {seed}")


def train_drawn(cache_dir, tiny: dict, init: dict, suite: Path, source: str, arch: str, data_seed: int, kind: str,
                seed: int, trained: dict, depths: dict, sigma2: float, extra: dict, matrices: dict,
                heldout_text: str) -> Path:
    """train() from the init inits.initialiser(kind, seed, trained, depths, sigma2) builds: a
    job for pool.run_all, whose arguments must pickle (a hook does not)."""
    from ... import inits

    return train(cache_dir, tiny, init, suite, source, arch, data_seed, kind, seed,
                 inits.initialiser(kind, seed, trained, depths, sigma2), extra, matrices, heldout_text)


def train_all(jobs: list[tuple]) -> list[Path]:
    """[train_drawn(*job)] for each job, the runs not yet cached trained side by side, one
    thread each (pool.py)."""
    missing = [job for job in jobs if not (_folder(*job) / "run.json").is_file()]
    pool.run_all(train_drawn, missing, [f"init run {job[7]!r} seed {job[8]}" for job in missing])
    return [_folder(*job) for job in jobs]


def _folder(cache_dir, tiny, init, suite, source, arch, data_seed, kind, seed, trained, depths, sigma2, extra,
            matrices, heldout_text) -> Path:
    """Where train_drawn(*job) puts its run."""
    key = run_key(tiny, init, source, kind, seed, extra, heldout_text, arch, data_seed)
    return Path(cache_dir) / "tiny-suite" / "inits" / key


@functools.lru_cache(maxsize=2)
def _raw_tokens(tokenizer: str, corpus_name: str, max_documents, cache_dir: str) -> np.ndarray:
    """The raw corpus as the suite's raw runs see it, encoded once per process. -> (n_tokens,)"""
    from tokenizers import Tokenizer

    from . import corpus
    from .train import encode

    docs = corpus.documents(corpus.fetch(corpus_name, Path(cache_dir)), max_documents)
    return encode(Tokenizer.from_file(tokenizer), list(docs.values()))


def _make(out: Path, tiny, init, suite, arch, data_seed, kind, seed, init_fn, matrices, heldout_text, cache_dir, extra):
    import torch
    from tokenizers import Tokenizer

    from .train import train_run

    cfg = run_settings(tiny, init)
    tok = Tokenizer.from_file(str(Path(suite) / "tokenizer.json"))
    tokens = _raw_tokens(str(Path(suite) / "tokenizer.json"), tiny["corpus"], tiny["max_documents"], str(cache_dir))
    held = torch.from_numpy(heldout_rows(tok, heldout_text, tiny["seq_len"], init["eval_rows"]))
    evals, keep = set(eval_steps(cfg["train_steps"], init["eval_every"])), set(matrix_steps(cfg["train_steps"]))
    heldout, kept = [], {}

    def at_step(step, model):
        if step in evals:
            heldout.append({"step": step, "loss": float(model(input_ids=held, labels=held).loss)})
        if step in keep:
            params = dict(model.named_parameters())
            kept.update({f"{step}/{role}": params[name].detach().numpy().copy() for role, name in matrices.items()})

    started = time.time()
    log = train_run(f"{kind} seed {seed}", tokens, cfg, {"seed": seed, "arch": arch}, tok.get_vocab_size(), None,
                    init=init_fn, data_seed=data_seed, at_step=at_step)
    seconds = round(time.time() - started, 2)
    # train_run logs the loss of the batch taken at step s - 1 as step s (the loss before that update).
    train_log = [{"step": x["step"] - 1, "loss": x["loss"]} for x in log if x["step"] - 1 in evals]
    (out / "log.json").write_text(json.dumps({"train": train_log, "heldout": heldout}))
    with open(out / "matrices.npz", "wb") as f:
        np.savez(f, **kept)
    (out / "run.json").write_text(json.dumps({"kind": kind, "seed": seed, "seconds": seconds, "settings": cfg,
                                              "init": init, "extra": extra}, indent=1, sort_keys=True))

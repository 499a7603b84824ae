"""The residual stream after each block, on held-out text, through training.

Forward hooks on the model's blocks capture each block's output (the residual stream it
writes), standardised per block; what is kept is its histogram on fixed bins and its excess
kurtosis, so that runs and steps compare on the same axes.
"""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.stats

from .checkpoints import CheckpointError, TransientError, is_transient

HELDOUT = Path(__file__).parent / "data" / "heldout.txt"
EDGES = np.linspace(-8.0, 8.0, 81)  # in units of the block's standard deviation
ACTIVATIONS_VERSION = 1


def token_batch(tokenize, text: str, seq_len: int, batch: int = 8) -> np.ndarray:
    """(rows, seq_len) token ids: the text's tokens cut into up to `batch` full rows."""
    ids = np.asarray(tokenize(text), dtype=np.int64)
    rows = min(batch, len(ids) // seq_len)
    if rows == 0:
        raise CheckpointError(f"{HELDOUT}: the tokenizer cuts the held-out text into {len(ids)} tokens; expected at "
                              f"least one sequence of {seq_len} (the model's context, at most 128)")
    return ids[: rows * seq_len].reshape(rows, seq_len)


def block_outputs(model, ids: np.ndarray) -> list[np.ndarray]:
    """The output of every transformer block (hooks), each (rows, seq, d) as float64."""
    import torch

    blocks = _blocks(model)
    captured = [None] * len(blocks)
    hooks = [b.register_forward_hook(lambda mod, inp, out, i=i: captured.__setitem__(i, out[0] if isinstance(out, tuple) else out))
             for i, b in enumerate(blocks)]
    try:
        with torch.no_grad():
            model(input_ids=torch.from_numpy(ids))
    finally:
        for h in hooks:
            h.remove()
    return [c.detach().double().numpy() for c in captured]


def _blocks(model):
    for path in ("gpt_neox.layers", "transformer.h", "model.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return list(obj)
        except AttributeError:
            continue
    raise CheckpointError(f"{type(model).__name__}: cannot find its transformer blocks; expected a model with "
                          "gpt_neox.layers, transformer.h or model.layers")


def histograms(outputs: list[np.ndarray]) -> dict:
    """{hist: (blocks, bins) densities of standardised values, kurtosis: (blocks,), std: (blocks,)}"""
    hist, kurt, std = [], [], []
    for x in outputs:
        v = x.ravel()
        s = v.std()
        hist.append(np.histogram((v - v.mean()) / s, EDGES, density=True)[0])
        kurt.append(scipy.stats.kurtosis(v))
        std.append(s)
    return {"hist": np.array(hist), "kurtosis": np.array(kurt), "std": np.array(std)}


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two histograms on EDGES."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q, base=2))


def checked_model(source: str, where: str, **kw):
    """AutoModelForCausalLM.from_pretrained(source), refusing weights that do not fill the
    model config.json describes exactly: a missing key would be randomly initialised, an
    unexpected one ignored, a mis-shaped one re-initialised, each silently."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # its load report would precede our one-line error
    hf_logging.disable_progress_bar()  # and its "Loading weights" bar would fill stderr
    try:
        model, info = AutoModelForCausalLM.from_pretrained(source, output_loading_info=True,
                                                           ignore_mismatched_sizes=True, **kw)
    except Exception as e:  # a network failure, or a config or file transformers rejects (its own error types)
        raise _load_error(e, f"{where}: transformers cannot load it") from e
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()
    problems = ([f"key {k!r} is missing from the weights" for k in sorted(info["missing_keys"])]
                + [f"key {k!r} is in the weights but not in the model" for k in sorted(info["unexpected_keys"])]
                + [f"key {k!r} has shape {tuple(got)} in the weights, {tuple(want)} in the model"
                   for k, got, want in sorted(info["mismatched_keys"], key=lambda m: m[0])]
                + [str(m) for m in info.get("error_msgs") or []])
    if problems:
        c = model.config
        expected = ", ".join(f"{k}={getattr(c, k)}" for k in ("num_hidden_layers", "n_layer", "hidden_size",
                                                              "intermediate_size", "vocab_size") if hasattr(c, k))
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{where}: {problems[0]}{more}; config.json describes a model with {expected}")
    return model.eval()


def _load_error(e: Exception, what: str) -> CheckpointError:
    """A failed load as a one-line error: temporary (retry) when the network failed, else a fact."""
    if is_transient(e):
        return TransientError(f"{what} ({type(e).__name__}: {e}); a temporary failure: retry when the hub can be reached")
    return CheckpointError(f"{what} ({type(e).__name__}: {e})")


@contextmanager
def _no_safetensors_conversion():
    """transformers, loading a `.bin`-only revision, starts a thread that asks the hub's
    discussions API for a conversion PR and may start the conversion Space; its documented
    switch turns that off (for the call only: the environment is left as it was)."""
    old = os.environ.get("DISABLE_SAFETENSORS_CONVERSION")
    os.environ["DISABLE_SAFETENSORS_CONVERSION"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DISABLE_SAFETENSORS_CONVERSION", None)
        else:
            os.environ["DISABLE_SAFETENSORS_CONVERSION"] = old


def load_model(run, ckpt):
    """A transformers model for a checkpoint, and its run's tokenizer as text -> ids. Hub
    checkpoints are downloaded whole (a forward pass needs every weight) into the project's
    cache (`<cache>/models`, not HF_HOME), model and tokenizer pinned to the step's commit."""
    where = f"run {run.name!r} step {ckpt.step} ({ckpt.folder})"
    if getattr(run, "repo", None):
        from transformers import AutoTokenizer

        repo, commit = ckpt.cache_id.split("@")
        models = str(Path(run.cache_dir) / "models")
        with _no_safetensors_conversion():
            try:
                try:
                    tok = AutoTokenizer.from_pretrained(repo, revision=commit, cache_dir=models)
                except OSError as e:  # a step branch without tokenizer files: main's, pinned to its commit
                    if is_transient(e) or not getattr(run, "main_commit", None):
                        raise
                    tok = AutoTokenizer.from_pretrained(repo, revision=run.main_commit, cache_dir=models)
            except Exception as e:  # network, or tokenizer files it cannot read
                raise _load_error(e, f"{where}: transformers cannot load the tokenizer of {repo}") from e
            model = checked_model(repo, where, revision=commit, cache_dir=models)
        return model, lambda t: tok(t)["input_ids"]
    from tokenizers import Tokenizer

    path = Path(run.folder).parent / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"run {run.name!r}: no tokenizer.json beside its folder ({path})")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
        raise CheckpointError(f"{path}: not a tokenizers tokenizer.json ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:300]})") from e
    return checked_model(ckpt.folder, where), lambda t: tok.encode(t).ids


def of_runs(runs: dict, steps: dict, cache) -> list[dict]:
    """[{run, step, hist, kurtosis, std}] for every run and its `steps`, each checkpoint's
    histograms cached under its weights' content hash and the text in the results cache at
    `cache` (a path or fsspec URL)."""
    from .store import Store, key_digest

    store, text, out = Store(cache), HELDOUT.read_text(), []
    for name, run in runs.items():
        for step in steps[name]:
            ck = run.checkpoint(step)
            key = {"kind": "activations", "version": ACTIVATIONS_VERSION, "weights": ck.content_hash,
                   "text": key_digest({"text": text})}
            out.append({"run": name, "step": step, **store.cached(key, lambda: of_checkpoint(run, ck, text))})
    return out


def of_checkpoint(run, ckpt, text: str) -> dict:
    """`histograms` of every block's output on `text` for one checkpoint, refused (before it
    can be cached) where a block's output or its statistics are not finite."""
    model, tokenize = load_model(run, ckpt)
    seq = min(128, int(getattr(model.config, "max_position_embeddings", 128)))
    where = f"run {run.name!r} step {ckpt.step} ({ckpt.folder})"
    try:
        ids = token_batch(tokenize, text, seq)
        vocab = getattr(model.config, "vocab_size", None)
        if isinstance(vocab, int) and ids.max() >= vocab:  # the embedding would fail with an IndexError
            raise CheckpointError(f"the tokenizer gives token id {ids.max()} but config.json's vocab_size is {vocab}; "
                                  "expected the run's own tokenizer")
        outputs = block_outputs(model, ids)
    except CheckpointError as e:  # too few tokens, another model's tokenizer, no blocks: name the checkpoint too
        raise CheckpointError(f"{where}: {e}") from e
    for block, x in enumerate(outputs):
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise CheckpointError(f"{where}: block {block}'s output holds {bad} non-finite values of {x.size} on the "
                                  "held-out text; expected finite activations")
    out = histograms(outputs)
    for block in range(len(outputs)):
        bad = [k for k, v in out.items() if not np.isfinite(v[block]).all()]
        if bad:  # e.g. a block whose output is constant: no spread to standardise by
            raise CheckpointError(f"{where}: block {block}'s output has non-finite {', '.join(bad)} (its standard "
                                  f"deviation is {out['std'][block]:g}); expected activations that vary")
    return out

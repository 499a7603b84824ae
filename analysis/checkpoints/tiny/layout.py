"""Where a tiny suite lives and when it saves: the digests that key its parts, Pythia's schedule.

Cache layout under <cache>/tiny-suite/: `tokenizers/<tokenizer_key>/` (trained once per
corpus and vocabulary), `runs/<run_key>/` (one trained run), and `<suite_key>/`, the suite
the settings name: one link per run to its folder under runs/, a link to the tokenizer and
manifest.json. A run is keyed by the settings every run shares and its own spec, so adding a
run to `tiny.runs` trains that run only.
"""

import hashlib
import math
import json

ARCHS = ("parallel", "sequential")  # GPT-NeoX use_parallel_residual True / False


def checkpoint_steps(total: int, every: int, shares=()) -> list[int]:
    """Pythia's schedule: 0 and powers of two up to 512 (within `total`), then every `every`
    steps; and the last step at or before each of `shares` of `total` (the verdicts' limits:
    a checkpoint past a limit could not show a shape formed by it)."""
    powers = [2**i for i in range(10) if 2**i <= total]
    steps = [0] + powers + [math.floor(s * total) for s in shares]
    start = max(powers, default=0)
    steps += list(range(every * (start // every + 1), total + 1, every))
    if steps[-1] != total:
        steps.append(total)
    return sorted(set(steps))


def _digest(x) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()[:12]


def suite_key(cfg: dict) -> str:
    """Digest of the `tiny` settings: one suite folder (of links) per distinct configuration."""
    return _digest(cfg)


def tokenizer_key(cfg: dict) -> str:
    """Digest of what the tokenizer depends on: the corpus, how much of it, the vocabulary size."""
    return _digest({k: cfg[k] for k in ("corpus", "max_documents", "vocab_size")})


def run_spec(spec: dict) -> dict:
    """A run's own settings with their defaults filled in: {data, seed, arch}."""
    return {"data": spec["data"], "seed": spec["seed"], "arch": spec.get("arch", "parallel")}


RECIPE = 2  # how a run is trained, beyond its settings; 2: one torch thread (bits differ from 1's two)


def run_key(cfg: dict, spec: dict) -> str:
    """Digest of the settings shared by every run (all but `runs`), this run's own spec and
    the training recipe."""
    return _digest({"shared": {k: v for k, v in cfg.items() if k != "runs"}, "run": run_spec(spec),
                    "recipe": RECIPE})

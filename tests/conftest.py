import copy
import shutil
from pathlib import Path

import pytest

from analysis.config import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]

# A seconds-sized suite (the same numbers as _quarto-smoke.yml).
SMOKE_TINY = dict(
    max_documents=12, vocab_size=512, n_layer=4, d_model=32, n_head=2, seq_len=32,
    batch_size=4, train_steps=16, linear_every=8, warmup_steps=4,
)


def smoke_settings() -> dict:
    cfg = copy.deepcopy(DEFAULTS["tiny"])
    cfg.update(SMOKE_TINY)
    return cfg


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory) -> Path:
    """A cache folder holding the downloaded corpus, fetched once per test session."""
    from analysis.checkpoints.tiny import corpus

    cache = tmp_path_factory.mktemp("corpus-cache")
    corpus.fetch(DEFAULTS["tiny"]["corpus"], cache)
    return cache


def fresh_cache(corpus_cache: Path, dest: Path) -> Path:
    """A new cache folder that already has the corpus (so tests do not download it again)."""
    shutil.copytree(corpus_cache / "corpus", dest / "corpus")
    return dest


def smoke_config(cache: Path) -> dict:
    """The smoke profile's settings with their cache at `cache` (ANALYSIS_CACHE_DIR, set
    only while they are read)."""
    import os

    from analysis import config

    os.environ["ANALYSIS_CACHE_DIR"] = str(cache)
    try:
        return config.load(root=ROOT, profile="smoke")
    finally:
        os.environ.pop("ANALYSIS_CACHE_DIR")


@pytest.fixture(scope="session")
def smoke_suite(corpus_cache, tmp_path_factory) -> Path:
    from analysis.checkpoints.tiny.train import build

    cache = fresh_cache(corpus_cache, tmp_path_factory.mktemp("smoke-cache"))
    return build(smoke_settings(), cache)


@pytest.fixture(scope="session")
def smoke_preview(corpus_cache, tmp_path_factory):
    """Every chapter executed through Jupyter on the smoke suite: (preview folder, figures folder)."""
    import os

    from analysis import report

    cache = fresh_cache(corpus_cache, tmp_path_factory.mktemp("preview-cache"))
    figures = ROOT / "report" / "figures" / "smoke"
    shutil.rmtree(figures, ignore_errors=True)
    before = os.environ.get("ANALYSIS_CACHE_DIR")
    os.environ["ANALYSIS_CACHE_DIR"] = str(cache)
    try:
        out = tmp_path_factory.mktemp("preview")
        written = report.preview(ROOT, profile="smoke", out=out)
    finally:
        os.environ.pop("ANALYSIS_CACHE_DIR") if before is None else os.environ.update(ANALYSIS_CACHE_DIR=before)
    return out, figures, written

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
def preview_cache(corpus_cache, tmp_path_factory) -> Path:
    """The cache the smoke preview trains its suite in (other previews of the smoke suite reuse it)."""
    return fresh_cache(corpus_cache, tmp_path_factory.mktemp("preview-cache"))


@pytest.fixture(scope="session")
def smoke_preview(preview_cache, tmp_path_factory):
    """Every chapter executed through Jupyter on the smoke suite: (preview folder, figures folder)."""
    import os

    from analysis import report

    cache = preview_cache
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


# --- A hub-shaped suite of small random-weight GPT-NeoX models of several sizes -------------

HUB_STEPS = (0, 1, 2, 4)
# name -> (hidden size, blocks, heads, {role: repo suffix}); 4 blocks: claim 3's slopes need 3+
HUB_SIZES = {"s": (32, 4, 4, {"reference": "", "treatment": "-deduped", "replicas": ["-seed1"]}),
             "m": (48, 4, 4, {"reference": "", "treatment": None, "replicas": []})}


def hub_size_runs(name: str) -> dict:
    """The runs of one size of HUB_SIZES by role, as repo ids (`analysis.sizes[].runs`)."""
    _, _, _, roles = HUB_SIZES[name]
    repo = lambda suffix: f"EleutherAI/pythia-{name}{suffix}"  # noqa: E731  (Pythia's branch rule)
    return {"reference": repo(roles["reference"]), "treatment": roles["treatment"] and repo(roles["treatment"]),
            "replicas": [repo(s) for s in roles["replicas"]]}


def neox_parameters(name: str) -> int:
    """The parameter count of a HUB_SIZES model, from the model itself."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    hidden, blocks, heads, _ = HUB_SIZES[name]
    model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=blocks,
                                             num_attention_heads=heads, intermediate_size=4 * hidden, rotary_pct=0.25))
    return sum(p.numel() for p in model.parameters())


def serve_hub_suite(hub, src: Path) -> dict:
    """Every run of every HUB_SIZES size on `hub`: HUB_STEPS branches (each step its own random
    weights, safetensors, with a word-level tokenizer) and main. -> {repo: folder of its last step}"""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(63)} | {"[UNK]": 63}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    out = {}
    for k, name in enumerate(HUB_SIZES):
        hidden, blocks, heads, _ = HUB_SIZES[name]
        config = GPTNeoXConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=blocks, num_attention_heads=heads,
                               intermediate_size=4 * hidden, rotary_pct=0.25, use_parallel_residual=True)
        runs = hub_size_runs(name)
        for j, repo in enumerate([runs["reference"], runs["treatment"], *runs["replicas"]]):
            if repo is None:
                continue
            for step in HUB_STEPS:
                folder = src / repo / f"step{step}"
                torch.manual_seed(1000 * k + 100 * j + step)
                GPTNeoXForCausalLM(config).save_pretrained(folder, safe_serialization=True)
                tokenizer.save_pretrained(folder)
                hub.add(repo, f"step{step}", folder)
            hub.add(repo, "main", folder)
            out[repo] = folder
    return out


def hub_suite_settings() -> dict:
    """`analysis:` settings for the HUB_SIZES suite: its sizes, the first size's runs as
    `runs`, every block at every step, smoke-sized toy and verdicts."""
    sizes = [{"name": n, "parameters": neox_parameters(n), "runs": hub_size_runs(n)} for n in HUB_SIZES]
    return {"suite": "hub", "runs": sizes[0]["runs"], "architectures": {}, "sizes": sizes, "depth_steps": "all",
            "residual": {"depth": 8, "seeds": 6, "alpha_seeds": 2},
            "verdicts": {"draws": 4, "bootstrap": 200}}


def project_copy(dest: Path, profile: str, settings: dict, files=("report/scale.qmd",)) -> Path:
    """A project root at `dest`: _quarto.yml, `files`, and _quarto-{profile}.yml holding
    `settings` under `analysis:` (what a chapter kernel there reads)."""
    import yaml

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "_quarto.yml", dest / "_quarto.yml")
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / f, dest / f)
    (dest / f"_quarto-{profile}.yml").write_text(yaml.safe_dump({"analysis": settings}))
    return dest

"""The public suites of the crfm and olmo profiles, read offline: their branch naming, their
architectures' matrices and their profile settings.

No network here, so nothing is recorded from the hub's API. Stanford CRFM's branch names are
the published list (tests/fixtures/crfm-mistral-models.json, vendored from the
stanford-crfm/mistral repository, whose README says every checkpoint is one branch); their
commit ids and every OLMo branch list below are constructed from the documentation (OLMo-1B
model card: "The naming convention is step1000-tokens4B"; OLMo 2: stage1-step..., stage2-
ingredient...), not recorded. Small models of each architecture are saved as their suites
store them (GPT-2 as a PyTorch `.bin`, OLMo and OLMo 2 as safetensors) and read through the
real huggingface_hub client from the fake hub (analysis.testing.fake_hub)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Olmo2Config, Olmo2ForCausalLM, OlmoConfig, OlmoForCausalLM

from analysis import config
from analysis.checkpoints import CheckpointError
from analysis.checkpoints.hub import SUITE_RULES, HubRun, rule_for, steps_from_branches
from analysis.checkpoints.suite import open_runs
from analysis.testing.fake_hub import FakeHub, client_on

from .conftest import ROOT

CRFM = json.loads((Path(__file__).parent / "fixtures" / "crfm-mistral-models.json").read_text())["runs"]
ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")


@pytest.fixture()
def fake_hub():
    with FakeHub(page_size=4) as hub, client_on(hub.url):
        yield hub


def gpt2_bin(folder: Path, seed: int) -> GPT2LMHeadModel:
    """A 4-block GPT-2 saved as older transformers saved the CRFM runs' pytorch_model.bin: one
    torch.save'd state dict with every block's causal-mask buffers (attn.bias, attn.masked_bias)
    and lm_head.weight sharing wte's storage (transformers 5 writes safetensors only)."""
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=4, n_embd=32, n_head=4, vocab_size=64, n_positions=16, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    state = dict(model.state_dict())
    state["lm_head.weight"] = state["transformer.wte.weight"]  # one storage, as tied weights are saved
    for b in range(cfg.n_layer):
        state[f"transformer.h.{b}.attn.bias"] = torch.tril(torch.ones(16, 16, dtype=torch.uint8)).view(1, 1, 16, 16)
        state[f"transformer.h.{b}.attn.masked_bias"] = torch.tensor(-1e4)
    folder.mkdir(parents=True)
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(cfg.to_json_string())
    return model


def olmo_safetensors(folder: Path, seed: int, cls=OlmoForCausalLM, cfg_cls=OlmoConfig):
    torch.manual_seed(seed)
    cfg = cfg_cls(num_hidden_layers=4, hidden_size=32, num_attention_heads=4, intermediate_size=48, vocab_size=64,
                  pad_token_id=0, bos_token_id=0, eos_token_id=0)
    model = cls(cfg).eval()
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").exists()
    return model


def np_(t) -> np.ndarray:
    return t.detach().numpy()


# --- branch names -> steps ------------------------------------------------------------------

def test_crfm_published_branches_are_609_steps_on_the_documented_schedule_in_numeric_order():
    # The five GPT-2 small runs (seeds 21, 49, 81, 343, 777) list the same 609 branches.
    lists = {name: run["checkpoints"] for name, run in CRFM.items()}
    assert sorted(lists) == ["alias", "battlestar", "caprica", "darkmatter", "expanse"]
    assert all(v == lists["alias"] for v in lists.values())
    branches = [{"name": n, "target_commit": f"{i:040x}"} for i, n in enumerate(["main", *lists["alias"]])]
    steps = steps_from_branches(branches, rule_for("stanford-crfm/alias-gpt2-small-x21"))
    # mistral-small.yaml's checkpoint_frequency: every 10 steps to 100, 50 to 2000, 100 to 20000,
    # 1000 to 400000; the README states the same schedule.
    schedule = sorted({0, *range(10, 101, 10), *range(150, 2001, 50), *range(2100, 20001, 100),
                       *range(21000, 400001, 1000)})
    assert sorted(steps) == schedule and len(schedule) == 609
    assert steps[400000]["branch"] == "checkpoint-400000"
    # Branch order is not step order: 'checkpoint-1000' sorts before 'checkpoint-200' as text.
    assert sorted(lists["alias"]) != [f"checkpoint-{s}" for s in schedule]


OLMO_STEPS = json.loads((Path(__file__).parent / "fixtures" / "olmo-1b-steps.json").read_text())["steps"]


def test_olmo_1b_published_steps_map_back_from_branch_names_in_numeric_order():
    # Branch names built by the OLMo-1B model card's convention (step1000-tokens4B): tokens in
    # billions at OLMo-1B's 4M-token batch (2048 sequences of 2048), rounded, as in its examples.
    names = [f"step{s}-tokens{round(s * 2048 * 2048 / 1e9)}B" for s in OLMO_STEPS]
    assert names[0] == "step1000-tokens4B" and "step20000-tokens84B" in names
    branches = [{"name": n, "target_commit": f"{i:040x}"} for i, n in enumerate(["main", *names[::-1]])]
    steps = steps_from_branches(branches, rule_for("allenai/OLMo-1B-hf"))
    assert sorted(steps) == OLMO_STEPS and len(steps) == 351
    assert (min(steps), max(steps)) == (1000, 738020)  # no step-0 checkpoint is published


OLMO_BRANCHES = ["main", "step1000-tokens4B", "step20000-tokens84B", "step117850-tokens494B", "step738020-tokens3095B"]
OLMO2_BRANCHES = ["main", "stage1-step0-tokens0B", "stage1-step1000-tokens5B", "stage1-step19000-tokens80B",
                  "stage2-ingredient1-step11931-tokens50B", "step150-tokens1B"]


def test_olmo_rules_take_the_documented_names_and_leave_other_stages_out():
    olmo = steps_from_branches([{"name": n, "target_commit": n} for n in OLMO_BRANCHES], rule_for("allenai/OLMo-1B-hf"))
    assert sorted(olmo) == [1000, 20000, 117850, 738020]
    olmo2 = steps_from_branches([{"name": n, "target_commit": n} for n in OLMO2_BRANCHES],
                                rule_for("allenai/OLMo-2-0425-1B", "olmo2-stage1"))
    assert {s: b["branch"] for s, b in olmo2.items()} == {0: "stage1-step0-tokens0B", 1000: "stage1-step1000-tokens5B",
                                                           19000: "stage1-step19000-tokens80B"}
    # Why OLMo 2 needs its own rule: OLMo 1's would take the one unprefixed branch only; auto
    # picks stage 1 for OLMo-2 repos.
    assert sorted(steps_from_branches([{"name": n, "target_commit": n} for n in OLMO2_BRANCHES],
                                      rule_for("allenai/OLMo-2-0425-1B", "olmo"))) == [150]
    assert rule_for("allenai/OLMo-2-0425-1B") == SUITE_RULES["olmo2-stage1"] != rule_for("allenai/OLMo-1B-hf")


def test_two_branches_naming_one_step_are_an_error_naming_both():
    with pytest.raises(CheckpointError, match=r"allenai/x: branches 'step1000-tokens4B' and 'step1000-tokens5B' both "
                                              r"name step 1000"):
        steps_from_branches([{"name": "step1000-tokens4B", "target_commit": "a"},
                             {"name": "step1000-tokens5B", "target_commit": "b"}], SUITE_RULES["olmo"], "allenai/x")


# --- the real client reads each architecture's roles as (out, in) ---------------------------

def test_crfm_gpt2_bin_branches_read_as_out_by_in_through_the_real_client(fake_hub, tmp_path):
    repo = "stanford-crfm/alias-gpt2-small-x21"
    models = {s: gpt2_bin(tmp_path / "src" / str(s), seed=s) for s in (0, 10, 2000)}
    for s in models:  # served in the published names, out of step order
        fake_hub.add(repo, f"checkpoint-{s}", tmp_path / "src" / str(s))
    fake_hub.add(repo, "main", tmp_path / "src" / "2000")
    run = HubRun(repo, tmp_path / "cache", rule=rule_for(repo, "crfm-gpt2"))
    assert run.steps == [0, 10, 2000] and run.name == "alias-gpt2-small-x21"
    ck = run.checkpoint(2000)
    assert ck.weights_file == "pytorch_model.bin" and ck.architecture.name == "gpt2" and ck.n_layers == 4
    assert run.middle_block() == 2
    fake_hub.reset()
    ck.prefetch([(role, 2) for role in ROLES])
    assert len(fake_hub.requests("cdn")) <= 4  # zip directory and data.pkl (at most 3), then the block
    blk = models[2000].transformer.h[2]
    # Conv1D stores (in, out): each role is its transpose, the (out, in) of an equivalent Linear.
    expected = {"qkv": blk.attn.c_attn.weight, "attn_out": blk.attn.c_proj.weight, "mlp_in": blk.mlp.c_fc.weight,
                "mlp_out": blk.mlp.c_proj.weight}
    for role, w in expected.items():
        np.testing.assert_array_equal(ck.matrix(role, 2), np_(w).T)
    assert ck.matrix("qkv", 2).shape == (96, 32) and ck.matrix("mlp_out", 2).shape == (32, 128)
    # another step is another commit's weights
    assert not np.array_equal(run.checkpoint(0).matrix("qkv", 2), ck.matrix("qkv", 2))


@pytest.mark.parametrize("arch,cls,cfg_cls,branches,revisions", [
    ("olmo", OlmoForCausalLM, OlmoConfig, OLMO_BRANCHES, "auto"),
    ("olmo2", Olmo2ForCausalLM, Olmo2Config, OLMO2_BRANCHES, "olmo2-stage1"),
])
def test_olmo_safetensors_branches_stack_qkv_and_gate_up_through_the_real_client(fake_hub, tmp_path, arch, cls, cfg_cls,
                                                                                 branches, revisions):
    repo = f"allenai/tiny-{arch}"
    models = {}
    for i, name in enumerate(branches):
        models[name] = olmo_safetensors(tmp_path / "src" / name, seed=i, cls=cls, cfg_cls=cfg_cls)
        fake_hub.add(repo, name, tmp_path / "src" / name)
    run = HubRun(repo, tmp_path / "cache", rule=rule_for(repo, revisions))
    last = run.steps[-1]
    (branch,) = [b for b in branches if re.fullmatch(run.rule, b) and int(re.search(r"step(\d+)", b).group(1)) == last]
    ck = run.checkpoint(last)
    assert ck.architecture.name == arch and ck.weights_file == "model.safetensors" and ck.n_layers == 4
    layer = models[branch].model.layers[2]
    att, mlp = layer.self_attn, layer.mlp
    expected = {"qkv": torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]), "attn_out": att.o_proj.weight,
                "mlp_in": torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), "mlp_out": mlp.down_proj.weight}
    fake_hub.reset()
    ck.prefetch([(role, 2) for role in ROLES])
    assert len(fake_hub.requests("cdn")) <= 3  # header (at most 2 reads), then the block's tensors
    for role, w in expected.items():  # Linear weights: already (out, in)
        np.testing.assert_array_equal(ck.matrix(role, 2), np_(w))
    assert ck.matrix("qkv", 2).shape == (96, 32) and ck.matrix("mlp_in", 2).shape == (96, 32)


# --- the profiles ----------------------------------------------------------------------------

def test_revision_setting_names_every_rule_and_rejects_others(tmp_path):
    assert set(config.REVISION_RULES) == {"auto", *SUITE_RULES}
    (tmp_path / "_quarto.yml").write_text("analysis:\n  suite: hub\n  runs: {reference: a/b}\n  revisions: gpt2\n")
    with pytest.raises(config.ConfigError, match=r"analysis.revisions: expected one of \['auto', 'pythia'.*got 'gpt2'"):
        config.load(root=tmp_path, profile="")


def test_crfm_profile_names_the_five_published_seeds_with_no_treatment():
    cfg = config.load(root=ROOT, profile="crfm")
    assert cfg["suite"] == "hub" and cfg["revisions"] == "crfm-gpt2" and cfg["runs"]["treatment"] is None
    repos = [cfg["runs"]["reference"], *cfg["runs"]["replicas"]]
    assert sorted(repos) == sorted(r["url"].removeprefix("https://huggingface.co/") for r in CRFM.values())
    assert cfg["architectures"] == {} and config.run_roles(cfg)[repos[0]] == "reference"


def test_olmo_profile_has_one_run_and_no_replica_or_treatment():
    cfg = config.load(root=ROOT, profile="olmo")
    assert cfg["suite"] == "hub" and cfg["revisions"] == "olmo"
    assert cfg["runs"] == {"reference": "allenai/OLMo-1B-hf", "treatment": None, "replicas": []}
    assert config.run_roles(cfg) == {"allenai/OLMo-1B-hf": "reference"}


@pytest.mark.parametrize("profile", ["crfm", "olmo"])
def test_each_profile_opens_its_runs_in_role_order_through_the_fake_hub(fake_hub, tmp_path, monkeypatch, profile):
    # Every run served with its suite's whole published list of branches (one small model behind
    # all of them), listed by HfApi and mapped by the profile's `revisions` rule.
    from analysis.testing.fake_hub import _sha

    monkeypatch.setenv("ANALYSIS_CACHE_DIR", str(tmp_path / "cache"))
    cfg = config.load(root=ROOT, profile=profile)
    if profile == "crfm":
        gpt2_bin(tmp_path / "model", 0)
        names, weights = CRFM["alias"]["checkpoints"], "pytorch_model.bin"
    else:
        olmo_safetensors(tmp_path / "model", 0)
        names, weights = [f"step{s}-tokens{round(s * 2048 * 2048 / 1e9)}B" for s in OLMO_STEPS], "model.safetensors"
    known = {weights: _sha(tmp_path / "model" / weights, "sha256")}
    for repo in config.run_roles(cfg):
        for name in ["main", *names]:
            fake_hub.add(repo, name, tmp_path / "model", sha256=known)
    runs = open_runs(cfg)
    assert [r.role for r in runs.values()] == list(config.run_roles(cfg).values())
    assert [r.repo for r in runs.values()] == list(config.run_roles(cfg))
    expected = sorted(int(re.search(r"\d+", n).group()) for n in names)
    assert all(r.steps == expected for r in runs.values()) and len(expected) == (609 if profile == "crfm" else 351)
    ref = next(iter(runs.values()))
    assert ref.checkpoint(expected[-1]).matrix("qkv", ref.middle_block()).shape == (96, 32)


@pytest.mark.slow
def test_a_build_without_treatment_or_replica_fills_every_table_but_claim_4s(corpus_cache, tmp_path):
    # The crfm profile's roles (replicas, no treatment) and the olmo profile's (the reference
    # alone), on the smoke suite: the two claim-4 tables are not computed, claims 1-3 are judged.
    from analysis import compute, results

    from .conftest import fresh_cache, smoke_config

    cfg = smoke_config(fresh_cache(corpus_cache, tmp_path))
    for replicas in (["raw-seed2"], []):
        r = results.Results({**cfg, "runs": {"reference": "raw", "treatment": None, "replicas": replicas},
                             "architectures": {}})
        assert set(r.fill()) == set(compute.TABLES) - set(results.NEEDS_TREATMENT)
        assert r.names == {"raw": "reference", **{x: "replica" for x in replicas}}
        assert set(r.verdicts.claim) == {1, 2, 3}
        assert not set(results.NEEDS_TREATMENT) & set(r._tables)  # nor pulled in by another table


@pytest.mark.parametrize("names", [{"a": "reference"}, {"a": "reference", "b": "replica"}])
def test_runs_grid_draws_a_build_of_the_reference_alone_and_names_other_runs_only(names):
    from analysis.plots import depth

    rng = np.random.default_rng(0)
    recs = [{"run": run, "role": role, "block": b, "sv": rng.random(8) + 0.1, "gaussian": rng.random((2, 8)) + 0.1}
            for run in names for role in ("qkv", "mlp_in") for b in (0, 1)]
    fig = depth.block_grid_runs(recs, names, bins=10)
    assert len(fig.legends) == len(names) - 1  # the olmo profile: nothing besides the filled reference

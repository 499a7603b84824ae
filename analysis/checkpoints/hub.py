"""Runs on the Hugging Face hub: steps from the repo's branches, tensors by byte range.

A run is a repo id (`EleutherAI/pythia-1b-deduped`); its checkpoints are branches whose
names follow a per-suite rule. Each branch is pinned to its commit, so the tensor cache is
keyed by immutable content. Files are read through huggingface_hub's HfFileSystem, whose
reads are HTTP Range requests.
"""

import json
import re
import time
import warnings
from pathlib import Path

from ..files import atomic_path
from .checkpoint import Checkpoint, CheckpointError, TransientError, is_transient
from .retry import retrying
from .tensor_cache import TensorCache, offline

# Revision naming rules: branch regex whose first group is the training step. The setting
# `analysis.revisions` names one for every run; "auto" takes the rule of the repo's owner
# (ORG_RULES). Each rule is the one its suite documents:
SUITE_RULES = {
    # EleutherAI/pythia-*: step0 ... step143000 (the Pythia README's checkpoint list).
    "pythia": r"step(\d+)",
    # stanford-crfm/{alias,battlestar,caprica,darkmatter,expanse}-gpt2-small-x{21,49,81,343,777}: one
    # branch per checkpoint, checkpoint-0 ... checkpoint-400000 (stanford-crfm/mistral README, "each
    # checkpoint is stored as a branch", and its mistral_models.json, which lists all 609 a run).
    "crfm-gpt2": r"checkpoint-(\d+)",
    # allenai/OLMo-1B(-hf), OLMo-7B(-hf): step1000-tokens4B ("The naming convention is
    # step1000-tokens4B", the OLMo-1B model card). The token count is a label, not read.
    "olmo": r"step(\d+)-tokens\d+B",
    # OLMo 2 (allenai/OLMo-2-*): pretraining is stage 1, stage1-step1000-tokens5B; stage-2 branches
    # (stage2-ingredient1-step11931-tokens50B) restart their step count on another data mix, so they
    # are not this run's steps. Branches without a stage prefix (reported on OLMo-2-1124-7B,
    # discussion #6 there, unanswered) are not read either: which stage they are is not documented.
    "olmo2-stage1": r"stage1-step(\d+)-tokens\d+B",
}
ORG_RULES = {"EleutherAI": "pythia", "stanford-crfm": "crfm-gpt2", "allenai": "olmo"}
# PolyPythias seed runs (EleutherAI/pythia-{14m,31m,70m,160m,410m}-seed{1..9}, and the decoupled
# pythia-160m-{data,weight}-seed{1..3}) name their 154 branches as Pythia does: the same rule.

# Branches reported not to hold the run's own checkpoint at that step. They are left out of
# the run's steps (the audit then lists them as missing from the schedule); each says where
# it was reported, so an entry can be dropped once upstream fixes it.
KNOWN_BAD_STEPS = {
    "EleutherAI/pythia-410m-seed2": {111000: "the branch has no weights (EleutherAI/pythia#202)"},
    "EleutherAI/pythia-410m-seed6": {88000: "the branch has no weights (EleutherAI/pythia#202)"},
    "EleutherAI/pythia-410m-seed9": {40000: "the branch has no weights (EleutherAI/pythia#202)"},
    # step0 is an initialisation the run never trained from: from step1 on, both runs continue
    # from data-seed1's initialisation instead (EleutherAI/pythia#203).
    "EleutherAI/pythia-160m-weight-seed1": {0: "step0 is not this run's initialisation (EleutherAI/pythia#203)"},
    "EleutherAI/pythia-160m-weight-seed2": {0: "step0 is not this run's initialisation (EleutherAI/pythia#203)"},
}


# A cached branch list younger than this is used without asking the hub (every command opens
# every run); an older one is refreshed, and used with a warning when the hub cannot be reached.
REFS_MAX_AGE_S = 24 * 3600


def rule_for(repo: str, revisions: str = "auto") -> str:
    """The branch regex of setting `analysis.revisions` (a SUITE_RULES name, or "auto": the
    rule of the repo's owner, Pythia's for an owner not in ORG_RULES; OLMo 2's stage 1 for
    allenai/OLMo-2-*, whose branches the OLMo 1 rule would mostly miss)."""
    if revisions != "auto":
        return SUITE_RULES[revisions]
    if repo.lower().startswith("allenai/olmo-2-"):
        return SUITE_RULES["olmo2-stage1"]
    return SUITE_RULES[ORG_RULES.get(repo.split("/")[0], "pythia")]


def steps_from_branches(branches: list[dict], rule: str, repo: str = "") -> dict[int, dict]:
    """{step: {branch, commit}} from [{name, target_commit}], for branches matching `rule`.
    Two branches naming one step are an error: which holds the step cannot be told."""
    out = {}
    for b in branches:
        m = re.fullmatch(rule, b["name"])
        if m:
            step = int(m.group(1))
            if step in out:
                raise CheckpointError(f"{repo}: branches {out[step]['branch']!r} and {b['name']!r} both name step "
                                      f"{step} under the revision rule {rule!r}; expected one branch a step")
            out[step] = {"branch": b["name"], "commit": b["target_commit"]}
    return out


class HubRun:
    """A checkpoint suite on the hub with the Run interface (name, steps, checkpoint)."""

    def __init__(self, repo: str, cache_dir, name: str | None = None, api=None, fs=None, rule: str | None = None,
                 path_for=None, known_bad: dict | None = None):
        self.repo, self.name = repo, name or repo.split("/")[-1]
        self.cache_dir = Path(cache_dir)
        self._api, self._fs = api, fs
        self.rule = rule or rule_for(repo)
        # Where a (repo, commit) lives on the file system; HfFileSystem's "repo@revision".
        self.path_for = path_for or (lambda repo, commit: f"{repo}@{commit}")
        self.tensor_cache = TensorCache(self.cache_dir)
        refs = self._refs()
        # main's commit: where files a step branch lacks (a tokenizer) are read from, pinned.
        self.main_commit = next((b["target_commit"] for b in refs if b["name"] == "main"), None)
        self.branches = steps_from_branches(refs, self.rule, repo)
        if not self.branches:
            raise CheckpointError(f"{repo}: no branch matches the revision rule {self.rule!r}; expected "
                                  f"branches named as setting analysis.revisions says (one of {', '.join(SUITE_RULES)}, "
                                  f"or auto: by the repo's owner)")
        bad = {r.lower(): steps for r, steps in (KNOWN_BAD_STEPS if known_bad is None else known_bad).items()}
        # {step: why} for branches that exist but are known to be wrong; not among `steps`.
        self.left_out = {s: why for s, why in bad.get(repo.lower(), {}).items() if s in self.branches}
        for s in self.left_out:
            del self.branches[s]

    def __repr__(self):
        return f"HubRun({self.repo!r}, {len(self.branches)} steps)"

    @property
    def api(self):
        if self._api is None:
            from huggingface_hub import HfApi

            self._api = HfApi()
        return self._api

    @property
    def fs(self):
        if self._fs is None:
            from huggingface_hub import HfFileSystem

            self._fs = HfFileSystem()
        return self._fs

    def _refs_path(self) -> Path:
        return self.cache_dir / "hub" / self.repo.replace("/", "--") / "refs.json"

    def _refs(self) -> list[dict]:
        """The repo's branches: from the cache when it is younger than REFS_MAX_AGE_S or
        HF_HUB_OFFLINE is set, else from the hub (then cached); a stale cache is used, with a
        warning, when the hub cannot be reached."""
        path = self._refs_path()
        cached = json.loads(path.read_text()) if path.is_file() else None
        if offline():
            if cached is None:
                raise TransientError(f"HF_HUB_OFFLINE is set and the branches of {self.repo} were never cached "
                                      f"({path}); run once with network access")
            return cached
        age = time.time() - path.stat().st_mtime if cached is not None else None
        if age is not None and 0 <= age < REFS_MAX_AGE_S:
            return cached
        try:
            refs = retrying(lambda: self.api.list_repo_refs(self.repo), f"{self.repo}: listing the repo's branches")
        except Exception as e:  # network, auth, missing repo: all mean "cannot list the run" now
            if not is_transient(e):  # no such repo, no access: a fact, which a cached list must not hide
                raise CheckpointError(f"{self.repo}: cannot list the repo's branches: the hub says {type(e).__name__}: "
                                      f"{e}; expected a hub repo id this account can read (check analysis.runs, and "
                                      "HF_TOKEN for a gated repo)") from e
            if cached is not None:
                warnings.warn(f"{self.repo}: cannot list the repo's branches on the hub ({type(e).__name__}: {e}); "
                              f"using the list cached {age / 3600:.0f} h ago ({path}). Set HF_HUB_OFFLINE=1 to work "
                              "from the cache without asking the hub", stacklevel=2)
                return cached
            raise TransientError(f"{self.repo}: cannot list the repo's branches on the hub ({type(e).__name__}: {e}); "
                                 "nothing is cached for it yet, so it needs network access once") from e
        branches = [{"name": b.name, "target_commit": b.target_commit} for b in refs.branches]
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(branches, indent=1))
        return branches

    @property
    def steps(self) -> list[int]:
        return sorted(self.branches)

    def checkpoint(self, step: int) -> Checkpoint:
        if step in self.left_out:
            raise CheckpointError(f"run {self.name!r} ({self.repo}): step {step} is left out: {self.left_out[step]}")
        if step not in self.branches:
            raise CheckpointError(f"run {self.name!r} ({self.repo}) has no step {step}; it has {len(self.steps)} "
                                  f"steps from {self.steps[0]} to {self.steps[-1]}")
        commit = self.branches[step]["commit"]
        return Checkpoint(self.path_for(self.repo, commit), step, self.name, fs=self.fs,
                          tensor_cache=self.tensor_cache, cache_id=f"{self.repo}@{commit}")

    def middle_block(self) -> int:
        return self.checkpoint(self.steps[0]).n_layers // 2

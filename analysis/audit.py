"""Check checkpoint data before believing it: identical weights across steps, missing steps
or files, non-finite values, degenerate matrices (all zero, constant, integer data).

Public suites have branches that serve the wrong or identical weights (Pythia: steps 0, 1
and 2 are reported identical; 86 of the 154 pythia-2.8b branches serve end-of-training
content, EleutherAI/pythia#205; two 12b branches serve the final first shard, #206). Per
step the audit records the weights' content hash (LFS metadata on the hub, a local hash
otherwise) and, for the tensors the analysis reads, a hash of their bytes.

A read that fails for a temporary reason (offline mode, network, timeout) is no verdict on
the checkpoint: its row says so (`transient`), and a table holding such a row is never cached.
"""

import hashlib

import numpy as np
import pandas as pd

from .checkpoints import CheckpointError, is_transient
from .checkpoints.checkpoint import defect

AUDIT_VERSION = 3


def pythia_schedule() -> list[int]:
    """Pythia's 154 checkpoint steps: 0, 1, 2, 4, ..., 512, then every 1000 to 143000."""
    return [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))


def expected_steps(run) -> list[int] | None:
    """The schedule a run should have, where its suite defines one."""
    rule = getattr(run, "rule", None)
    if rule is not None and getattr(run, "repo", "").startswith("EleutherAI/pythia"):
        return pythia_schedule()
    return None


def _row(run: str, step: int, **fields) -> dict:
    return {"run": run, "step": step, "content_hash": None, "tensors_hash": None, "nonfinite": 0, "defects": "",
            "error": "", "transient": False, **fields}


def check_step(run, step: int, tensors: list[str]) -> dict:
    """One row: hashes of the weights and of the named tensors, non-finite count, other
    defects of the tensors (defect()), the error if unreadable and whether it was temporary."""
    row = _row(run.name, step)
    try:
        ck = run.checkpoint(step)
        row["content_hash"] = ck.content_hash
        if tensors:  # the analysis reads this config (an LFS-only audit reads no more than hashes)
            ck.n_layers, ck.n_heads  # noqa: B018  (a config that cannot say the model's shape is unreadable)
        h, defects = hashlib.sha256(), []
        for name in tensors:
            t = np.ascontiguousarray(ck.tensor(name))
            h.update(name.encode() + t.tobytes())
            if t.dtype.kind == "f":
                row["nonfinite"] += int(np.size(t) - np.count_nonzero(np.isfinite(t)))
            why = defect(t)
            if why and "non-finite" not in why:  # non-finite values are counted above
                defects.append(f"tensor {name} {why}")
        row["tensors_hash"] = h.hexdigest() if tensors else None
        row["defects"] = "; ".join(defects)
    except Exception as e:
        if not isinstance(e, (CheckpointError, OSError, KeyError, IndexError)):
            raise  # a bug, not a fact about the checkpoint
        row["error"] = " ".join(f"{type(e).__name__}: {e}".split())
        row["transient"] = is_transient(e)
    return row


def flag(rows: list[dict], expected: dict | None = None) -> pd.DataFrame:
    """Add a `flag` column: identical to an earlier step (weights or tensors read), missing
    from the expected schedule, unreadable (or not read: a temporary failure), non-finite,
    degenerate."""
    table = pd.DataFrame(rows)
    if table.empty:
        return table.assign(flag=[])
    flags = {i: [] for i in table.index}
    for run, t in table.groupby("run", sort=False):
        first_seen = {}
        for i, r in t.sort_values("step").iterrows():
            if r["error"]:
                flags[i].append("not read (temporary failure)" if r.get("transient") else "unreadable")
            if r["nonfinite"]:
                flags[i].append(f"{r['nonfinite']} non-finite values")
            if isinstance(r.get("defects"), str) and r["defects"]:
                flags[i].append(r["defects"])
            for col, what in (("content_hash", "weights"), ("tensors_hash", "tensors read")):
                h = r[col]
                if not (isinstance(h, str) and h):  # no hash (None, or NaN in a pandas string column)
                    continue
                if (col, h) in first_seen:
                    flags[i].append(f"{what} identical to step {first_seen[(col, h)]}")
                else:
                    first_seen[(col, h)] = r["step"]
    table["flag"] = ["; ".join(flags[i]) for i in table.index]
    if expected:
        missing = []
        for run, t in table.groupby("run", sort=False):
            have = set(t["step"])
            missing += [{**_row(run, s), "flag": "missing"} for s in expected.get(run) or [] if s not in have]
        table = pd.concat([table, pd.DataFrame(missing)], ignore_index=True) if missing else table
    return table.sort_values(["run", "step"], ignore_index=True)


def audit(runs: dict, tensors_for, steps_for=None) -> pd.DataFrame:
    """Audit every step of every run. `tensors_for(run)` names the tensors to hash;
    `steps_for(run)` (default: all) chooses steps."""
    rows, expected = [], {}
    for run in runs.values():
        names = tensors_for(run)
        for step in (steps_for(run) if steps_for else run.steps):
            rows.append(check_step(run, step, names))
        expected[run.name] = expected_steps(run)
    return flag(rows, expected)


def flagged_steps(table: pd.DataFrame) -> dict[str, set]:
    """{run: steps with any flag}."""
    bad = table[table["flag"] != ""]
    return {run: set(g["step"]) for run, g in bad.groupby("run")}


def why(table: pd.DataFrame, run: str, step: int) -> str:
    """A step's flags, with the read error where there is one: what a warning says."""
    r = table[(table["run"] == run) & (table["step"] == step)].iloc[0]
    if not (isinstance(r["error"], str) and r["error"]):
        return r["flag"]
    if r["transient"]:  # its message says "temporary failure ...; retry" already: say it once
        return f"not read: {r['error'].removeprefix('TransientError: ')}"
    return f"{r['flag']} ({r['error']})"

"""Fill and read the results cache for what the chapters show.

`spectra(cfg)` is the one entry point chapters and `python -m analysis compute` share:
per run, step and role of the configured block, the weights' singular values with the
fitted baselines, cached in the store under the checkpoint's content hash.
"""

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import shape
from .backend import array_module
from .checkpoints import Checkpoint, open_runs, select_steps
from .spectra import with_baselines
from .store import Store

SPECTRUM_VERSION = 1  # bump when what `spectrum` computes changes
NEAR_ZERO_Q = 0.1  # "near zero": below the Gaussian baseline's 10th percentile


def resolve_block(cfg: dict, run) -> int:
    return run.middle_block() if cfg["block"] == "middle" else int(cfg["block"])


def spectrum(ckpt: Checkpoint, role: str, block: int, seed: int, store: Store, xp=np) -> dict:
    name = ckpt.tensor_name(role, block)
    key = {"kind": "spectrum", "version": SPECTRUM_VERSION, "weights": ckpt.content_hash, "tensor": name, "seed": seed}

    def compute():
        w = ckpt.matrix(role, block).astype(np.float64)
        out = with_baselines(w, seed, xp)
        out.update(kurtosis=shape.excess_kurtosis(w), rows=w.shape[0], cols=w.shape[1])
        return out

    return store.cached(key, compute)


def spectra(cfg: dict, progress: bool = True) -> list[dict]:
    """Records {run, step, block, role, sv, gaussian, logistic, fits, ...} for the configured
    runs, steps, block and roles, in run, step, role order."""
    store, xp = Store(cfg["cache_dir"]), array_module(cfg["backend"])
    runs = open_runs(cfg)
    jobs = []
    for run in runs.values():
        block = resolve_block(cfg, run)
        for step in select_steps(run, cfg["steps"]):
            jobs += [(run, step, block, role) for role in cfg["roles"]]
    records = []
    for run, step, block, role in tqdm(jobs, desc="spectra", unit="matrix", disable=not progress):
        rec = spectrum(run.checkpoint(step), role, block, cfg["seed"], store, xp)
        records.append({"run": run.name, "step": step, "block": block, "role": role, **rec})
    return records


def measures(records: list[dict]) -> pd.DataFrame:
    """Tidy table (run, step, block, role, measure, value) of the shape measures."""
    rows = []
    for r in records:
        values = {
            "top_ratio_gaussian": shape.top_ratio(r["sv"], r["gaussian"]),
            "top_ratio_logistic": shape.top_ratio(r["sv"], r["logistic"]),
            "near_zero_gaussian": shape.near_zero_fraction(r["sv"], r["gaussian"], NEAR_ZERO_Q),
            "ks_gaussian": shape.ks_distance(r["sv"], r["gaussian"]),
            "ks_logistic": shape.ks_distance(r["sv"], r["logistic"]),
            "w1_gaussian": shape.w1_distance(r["sv"], r["gaussian"]),
            "kurtosis": r["kurtosis"],
            "n_singular_values": len(r["sv"]),
        }
        rows += [{"run": r["run"], "step": r["step"], "block": r["block"], "role": r["role"], "measure": k, "value": v} for k, v in values.items()]
    return pd.DataFrame(rows)

"""Experiments beyond one spectrum: run-to-run distances, the toy model against
non-product controls, the QKV parts and the baselines' convergence to Marchenko-Pastur.
Each takes settings, runs and records and returns a table or arrays."""

import numpy as np
import pandas as pd
import scipy.stats

from . import baselines, measures, residual
from .architectures import split_qkv
from .checkpoints import CheckpointError
from .spectra import singular_values


def run_distances(runs: dict, records: list[dict], reference: str, block: int) -> pd.DataFrame:
    """For every other run, per (step, block, role) that the reference also has:
    w1_spectrum, the W1 distance of its scale-normalised spectrum to the reference's; and for
    the configured block, weight_distance = ||W - W_ref||_F / ||W_ref||_F (how far the two
    runs' weights are apart, which says when runs that share an initialisation diverge).
    -> (run, step, block, role, measure, value)"""
    ref = {(r["step"], r["block"], r["role"]): r for r in records if r["run"] == reference}
    rows = []
    for r in records:
        other = ref.get((r["step"], r["block"], r["role"]))
        if r["run"] == reference or other is None:
            continue
        ids = (r["run"], r["step"], r["block"], r["role"])
        rows.append((*ids, "w1_spectrum", measures.w1_distance(r["sv"], other["sv"])))
        if r["block"] == block:
            w = runs[r["run"]].checkpoint(r["step"]).matrix(r["role"], block).astype(np.float64)
            w_ref = runs[reference].checkpoint(r["step"]).matrix(r["role"], block).astype(np.float64)
            rows.append((*ids, "weight_distance", float(np.linalg.norm(w - w_ref) / np.linalg.norm(w_ref))))
    return pd.DataFrame(rows, columns=["run", "step", "block", "role", "measure", "value"])


def toy_width(records: list[dict]) -> int:
    """The model's width: the smaller side of its matrices (d for QKV's 3d x d, the MLP's 4d x d)."""
    return max(min(r["rows"], r["cols"]) for r in records)


def toy_against_controls(runs: dict, records: list[dict], sim: dict, width: int, draws: int, seed: int):
    """Claim 2's test, per record: the toy depth that fits the weights' spectrum best on the
    first half of the toy's seeds (W1 on sigma / rms), judged on the other half, against
    non-product controls: the record's Gaussian and logistic draws and `draws` Gaussian
    matrices with log-normal row and column scales fitted to the weights.
    -> (fit: (run, step, block, role, model, sample, w1), depth: (run, step, block, role,
    depth, low, high, mean_path_length, distance))"""
    fit, depth = [], []
    for r in records:
        ids = (r["run"], r["step"], r["block"], r["role"])
        key = f"sv_{residual.columns_for(width, min(r['rows'], r['cols']) / max(r['rows'], r['cols']))}"
        toy = sim[key]  # (depth, seeds, c)
        half = toy.shape[1] // 2
        dist = np.array([[measures.w1_distance(r["sv"], toy[L, s]) for s in range(toy.shape[1])]
                         for L in range(toy.shape[0])])  # (depth, seeds)
        best = int(dist[:, :half].mean(axis=1).argmin())
        held = dist[:, half:]
        per_seed = held.argmin(axis=0) + 1
        depth.append((*ids, best + 1, int(held.mean(axis=1).argmin() + 1), float(np.percentile(per_seed, 10)),
                      float(np.percentile(per_seed, 90)), (best + 1) * sim["sigma2"] / (1 + sim["sigma2"]),
                      float(held[best].mean())))
        fit += [(*ids, "toy", s, float(v)) for s, v in enumerate(held[best])]
        for kind in ("gaussian", "logistic"):
            fit += [(*ids, kind, i, measures.w1_distance(r["sv"], d)) for i, d in enumerate(r[kind])]
        w = runs[r["run"]].checkpoint(r["step"]).matrix(r["role"], r["block"]).astype(np.float64)
        params = baselines.fit_scales(w)
        for i in range(draws):
            control = baselines.sample_scaled(params, w.shape, baselines.draw_seed(seed, *ids, "scaled", i))
            fit.append((*ids, "scaled", i, measures.w1_distance(r["sv"], singular_values(control))))
    cols = ["run", "step", "block", "role"]
    return (pd.DataFrame(fit, columns=[*cols, "model", "sample", "w1"]),
            pd.DataFrame(depth, columns=[*cols, "depth", "heldout_depth", "low", "high", "mean_path_length", "distance"]))


def effective_depths(records: list[dict], sim: dict, width: int) -> pd.DataFrame:
    """Per record: the toy depth nearest its spectrum over all the toy's seeds, with the
    10th-90th percentile band of per-seed best depths (figures through training and depth)."""
    rows = []
    for r in records:
        e = residual.effective_depth(r["sv"], r["rows"], r["cols"], sim, width)
        rows.append({"run": r["run"], "step": r["step"], "block": r["block"], "role": r["role"],
                     "effective_depth": e["depth"], "low": e["low"], "high": e["high"], "distance": e["distance"],
                     "mean_path_length": e["depth"] * sim["sigma2"] / (1 + sim["sigma2"])})
    return pd.DataFrame(rows)


def qkv_parts(ckpt, block: int, seed: int) -> dict:
    """Singular values of a fused QKV matrix and of the Q, K and V split out of it, each with
    one Gaussian draw. -> {name: (sv, gaussian)} for fused, q, k, v"""
    w = ckpt.matrix("qkv", block).astype(np.float64)
    try:
        parts = split_qkv(w, ckpt.n_heads, ckpt.architecture.qkv_layout)
    except ValueError as e:  # the head count in config.json does not divide the matrix
        raise CheckpointError(f"run {ckpt.run!r} step {ckpt.step} block {block} qkv: {e}; expected it to split by "
                              f"{ckpt.architecture.n_heads_key}={ckpt.n_heads} in {ckpt.folder}/config.json") from e
    mats = {"fused": w, **dict(zip("qkv", parts))}
    out = {}
    for name, m in mats.items():
        g = baselines.sample("gaussian", baselines.fit_gaussian(m), m.shape, baselines.draw_seed(seed, "qkv-parts", name))
        out[name] = (singular_values(m), singular_values(g))
    return out


def baselines_vs_mp(seed: int, sizes=(32, 64, 128, 256, 512, 1024)) -> pd.DataFrame:
    """KS distance to Marchenko-Pastur of sampled Gaussian and logistic (size, 2*size)
    matrices: both converge by universality. -> (size, kind, ks)"""
    rows = []
    for size in sizes:
        for kind, params in (("gaussian", {"loc": 0.0, "scale": 1.0}), ("logistic", {"loc": 0.0, "scale": np.sqrt(3) / np.pi})):
            sv = singular_values(baselines.sample(kind, params, (size, 2 * size), baselines.draw_seed(seed, "mp", size, kind)))
            ks = scipy.stats.kstest(sv, lambda s: baselines.mp_cdf(s, size, 2 * size, 1.0)).statistic
            rows.append((size, kind, float(ks)))
    return pd.DataFrame(rows, columns=["size", "kind", "ks"])

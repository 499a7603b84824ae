"""The study authors' published per-block weight statistics of five Pythia sizes: loaded
from the vendored table (analysis/data/pythia_published/, made by
scripts/vendor_published_stats.py) and audited against what each file claims to be.

Table: (size, role, statistic, step, block, value); sizes by the study's names, roles as
everywhere in this package (qkv, attn_out, mlp_in, mlp_out), statistics std, mean, max
(of the matrix's entries), norm (claimed Frobenius norm) and diff (a change between
consecutive checkpoints, unit not stated).
"""

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from .weight_stats import tail_ratio as _tail_ratio

FOLDER = Path(__file__).parent / "data" / "pythia_published"
# The study's size names are Pythia's names before the suite's renaming in early 2023 (the
# old names counted non-embedding parameters). Each mapping is checked against the data:
# block count from each file's columns, width from the first checkpoint's std (audit).
SIZES = {  # study name: (hub name, blocks, width d)
    "19m": ("pythia-70m", 6, 512),
    "125m": ("pythia-160m", 12, 768),
    "350m": ("pythia-410m", 24, 1024),
    "800m": ("pythia-1b", 16, 2048),
    "1.3b": ("pythia-1.4b", 24, 2048),
}
PYTHIA_WIDTHS = (128, 256, 512, 768, 1024, 2048, 2560, 4096, 5120)  # every Pythia size's d_model
STEPS = tuple(range(1000, 142001, 1000))  # one per row of a per-checkpoint file (assumed; see audit)
PER_CHECKPOINT = ("std", "mean", "max", "norm")
OUTPUT_ROLES = ("attn_out", "mlp_out")  # GPT-NeoX's output_layer_init_method (wang_init) applies to these
NORM_TOLERANCE = 1e-3  # relative: the statistics come from float16 weights
INIT_RANGE = (0.75, 1.5)  # first checkpoint's std over the documented init (1000 steps in, not step 0)


def size_of(run: str) -> str | None:
    """The study's size name for a hub run of one of the five sizes (either data: the
    files do not say whether they are of the standard or the deduplicated runs), else None."""
    name = run.rsplit("/", 1)[-1].removesuffix("-deduped")
    return next((s for s, (hub, _, _) in SIZES.items() if hub == name), None)


def shape(size: str, role: str) -> tuple[int, int]:
    """w: (out, in) of a role in a GPT-NeoX block of width d (MLP 4d wide)."""
    d = SIZES[size][2]
    return {"qkv": (3 * d, d), "attn_out": (d, d), "mlp_in": (4 * d, d), "mlp_out": (d, 4 * d)}[role]


def init_std(size: str, role: str) -> float:
    """Pythia's documented initialisation (GPT-NeoX megatron/model/init_functions.py, Pythia
    configs `init_method: small_init`, `output_layer_init_method: wang_init`): small_init
    sqrt(2 / (5 d)) for the input projections, wang_init 2 / (L sqrt(d)) for the output ones."""
    _, layers, d = SIZES[size]
    return 2 / (layers * np.sqrt(d)) if role in OUTPUT_ROLES else float(np.sqrt(2 / (5 * d)))


@cache
def _read(folder: Path) -> pd.DataFrame:
    path = folder / "stats.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the vendored published statistics are missing "
                                "(regenerate with scripts/vendor_published_stats.py)")
    t = pd.read_csv(path, dtype={"size": str})
    expected = ["size", "role", "statistic", "step", "block", "value"]
    if list(t.columns) != expected:
        raise ValueError(f"{path}: columns {list(t.columns)}, expected {expected}")
    return t


def load(folder: Path = FOLDER) -> pd.DataFrame:
    """The vendored table, every row (audited or not)."""
    return _read(Path(folder)).copy()


def provenance(folder: Path = FOLDER) -> dict:
    return json.loads((Path(folder) / "provenance.json").read_text())


def wide(table: pd.DataFrame, size: str, role: str, statistic: str) -> pd.DataFrame:
    """One statistic as (step x block)."""
    sub = table[(table["size"] == size) & (table["role"] == role) & (table["statistic"] == statistic)]
    return sub.pivot(index="step", columns="block", values="value").sort_index()


def _file(size, role, statistic) -> str:
    upstream = {"qkv": "attn_qkv", "attn_out": "attn_dense", "mlp_in": "mlp_h24h", "mlp_out": "mlp_4h2h"}[role]
    return f"weight_statistics/{size}_{upstream}_{statistic}_list.npy"


def audit(table: pd.DataFrame) -> pd.DataFrame:
    """Every check of every (size, role, statistic) the table holds.
    -> (size, role, statistic, file, check, passes, finding, value: the measured number
    where a check has one, e.g. the norm check's largest relative difference)"""
    rows = []

    def add(size, role, stat, check, ok, finding, value=np.nan):
        rows.append({"size": size, "role": role, "statistic": stat, "file": _file(size, role, stat),
                     "check": check, "passes": bool(ok), "finding": finding, "value": float(value)})

    for (size, role), g in table.groupby(["size", "role"], sort=False):
        stats = {s: wide(g, size, role, s) for s in dict.fromkeys(g["statistic"])}
        _, layers, _ = SIZES[size]
        n = int(np.prod(shape(size, role)))
        for stat, w in stats.items():
            rows_expected = len(STEPS) if stat in PER_CHECKPOINT else len(STEPS) - 1
            ok = w.shape == (rows_expected, layers)
            add(size, role, stat, "shape", ok,
                f"{w.shape[0]} rows × {w.shape[1]} blocks" + ("" if ok else
                f"; expected {rows_expected} × {layers} ({SIZES[size][0]}: {layers} blocks, "
                f"{'one row per checkpoint' if stat in PER_CHECKPOINT else 'one per pair of checkpoints'})"))
            finite = bool(np.isfinite(w.to_numpy()).all())
            if not finite:
                add(size, role, stat, "finite", False, "non-finite values")
        if "std" in stats:
            s = stats["std"]
            add(size, role, "std", "positive", (s.to_numpy() > 0).all(), f"smallest {s.to_numpy().min():.3g}")
            first = s.iloc[0].to_numpy()
            ratio = float(first.mean() / init_std(size, role))
            ok = INIT_RANGE[0] <= ratio <= INIT_RANGE[1]
            add(size, role, "std", "near init", ok,
                f"first row's std {first.mean():.4g} (blocks {first.min():.4g}–{first.max():.4g}) is {ratio:.3g}× "
                f"the documented init {init_std(size, role):.4g}")
            if role not in OUTPUT_ROLES:  # small_init gives d back: which Pythia width is it?
                implied = 2 / (5 * first.mean() ** 2)
                nearest = min(PYTHIA_WIDTHS, key=lambda x: abs(np.log(x / implied)))
                add(size, role, "std", "width", nearest == SIZES[size][2],
                    f"small_init implies d ≈ {implied:.0f}: nearest Pythia width {nearest} "
                    f"({'matches' if nearest == SIZES[size][2] else 'does not match'} {SIZES[size][0]}'s {SIZES[size][2]})")
        if "max" in stats and "mean" in stats:
            ok = (stats["max"].to_numpy() > stats["mean"].to_numpy()).all()
            add(size, role, "max", "above mean", ok, "max exceeds the mean everywhere" if ok else "max ≤ mean somewhere")
            fp16 = np.array_equal(stats["max"].to_numpy().astype(np.float16).astype(np.float64), stats["max"].to_numpy())
            add(size, role, "max", "float16 value", True,
                "every max is a float16 number (computed from float16 weights)" if fp16 else
                "some max values are not float16 numbers")
        if {"norm", "std", "mean"} <= set(stats):
            nm = stats["norm"]
            implied = np.sqrt(n * (stats["std"] ** 2 + stats["mean"] ** 2)).reindex(nm.index)
            rel = (nm / implied - 1).abs().to_numpy()
            ok = np.nanmax(rel) <= NORM_TOLERANCE and nm.shape[0] == len(STEPS)
            add(size, role, "norm", "norm from std and mean", ok,
                f"‖W‖_F vs √(n(std² + mean²)), n = {n}: largest relative difference {np.nanmax(rel):.2g}"
                + ("" if ok else f" (tolerance {NORM_TOLERANCE:g}); median ratio {np.nanmedian(nm / implied):.3g}: "
                   "not the Frobenius norm of the checkpoint"), value=np.nanmax(rel))
        if "diff" in stats and {"std", "mean"} <= set(stats):
            norm = np.sqrt(n * (stats["std"] ** 2 + stats["mean"] ** 2))
            bound = (norm + norm.shift(1)).reindex(stats["diff"].index)  # ‖W_t − W_t-1‖ ≤ ‖W_t‖ + ‖W_t-1‖
            over = float((stats["diff"] > bound).to_numpy().mean())
            add(size, role, "diff", "Frobenius bound", over == 0,
                "within ‖W_t‖ + ‖W_t−1‖ everywhere" if over == 0 else
                f"{over:.0%} of values exceed ‖W_t‖ + ‖W_t−1‖: not a Frobenius distance between checkpoints (unit not stated)")
        for a, b in [("norm", "diff"), ("std", "mean"), ("std", "max"), ("mean", "max")]:
            if a in stats and b in stats and stats[a].shape == stats[b].shape and np.array_equal(stats[a], stats[b]):
                for x, y in ((a, b), (b, a)):
                    add(size, role, x, "distinct", False, f"holds exactly the numbers of {_file(size, role, y)}")
    return pd.DataFrame(rows)


def usable(table: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """The rows of the (size, role, statistic) combinations that pass every check."""
    failed = findings[~findings["passes"]][["size", "role", "statistic"]].drop_duplicates()
    keys = pd.MultiIndex.from_frame(table[["size", "role", "statistic"]])
    return table[~keys.isin(pd.MultiIndex.from_frame(failed))].reset_index(drop=True)


def with_n(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each matrix's entry count n (from its size and role)."""
    n = {(s, r): int(np.prod(shape(s, r))) for s in SIZES for r in ("qkv", "attn_out", "mlp_in", "mlp_out")}
    return table.assign(n=[n[k] for k in zip(table["size"], table["role"])])


def tail_ratio(table: pd.DataFrame) -> pd.DataFrame:
    """weight_stats.tail_ratio of every published matrix. -> (size, role, step, block, value)"""
    return _tail_ratio(with_n(table), ["size", "role", "step", "block"])


def norms(table: pd.DataFrame) -> pd.DataFrame:
    """Frobenius norm per matrix from its std and mean, √(n (std² + mean²)) (the published
    norm files fail the audit for every size but 19m). -> (size, role, step, block, value)"""
    t = with_n(table[table["statistic"].isin(["std", "mean"])])
    w = t.pivot_table(index=["size", "role", "step", "block", "n"], columns="statistic", values="value").reset_index()
    w["value"] = np.sqrt(w["n"] * (w["std"] ** 2 + w["mean"] ** 2))
    return w[["size", "role", "step", "block", "value"]]


def first_row_deviation(table: pd.DataFrame) -> pd.DataFrame:
    """The first published row's std against the documented init per (size, role): the
    ratio (mean over blocks) and the largest block's deviation in standard errors of a
    freshly drawn matrix's std (1 / √(2n) relative): many standard errors off means the
    row is not the initialisation. -> (size, role, ratio, max_z)"""
    rows = []
    for (size, role), g in table[table["statistic"] == "std"].groupby(["size", "role"], sort=False):
        first = g[g["step"] == g["step"].min()]["value"].to_numpy() / init_std(size, role)
        se = 1 / np.sqrt(2 * np.prod(shape(size, role)))
        rows.append({"size": size, "role": role, "ratio": float(first.mean()), "max_z": float(np.abs(first - 1).max() / se)})
    return pd.DataFrame(rows)

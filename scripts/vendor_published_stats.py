"""Regenerate analysis/data/pythia_published/ from the study authors' repository.

    python scripts/vendor_published_stats.py PATH [--out analysis/data/pythia_published]

PATH: a checkout of github.com/BerenMillidge/LM_facts_across_training or its bare git dir.
Writes stats.csv.gz (one tidy row per size, role, statistic, step, block: the weight
statistics of the four matrix roles), provenance.json (upstream commit, each source file's
sha256, what was left out and why, which upstream files hold identical numbers) and the
upstream LICENSE. Deterministic: the same source gives the same bytes.

Nothing is unpickled: the files that are object arrays (pickled Python lists) are listed as
left out, never loaded.
"""

import argparse
import gzip
import hashlib
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = "BerenMillidge/LM_facts_across_training"
SIZES = ("19m", "125m", "350m", "800m", "1.3b")  # the study's names (Pythia's before its 2023 renaming)
ROLES = {"attn_qkv": "qkv", "attn_dense": "attn_out", "mlp_h24h": "mlp_in", "mlp_4h2h": "mlp_out"}
STATISTICS = ("std", "mean", "max", "norm", "diff")
FIRST_STEP, STEP_EVERY = 1000, 1000  # row i of a per-checkpoint file: step 1000 (i + 1) (assumed; audited)
COLUMNS = ["size", "role", "statistic", "step", "block", "value"]


def _git(source: Path, *args) -> bytes:
    return subprocess.run(["git", "-C", str(source), *args], check=True, capture_output=True).stdout


def read_files(source: Path) -> tuple[str, dict]:
    """(commit, {path: bytes}) of weight_statistics/*.npy and LICENSE at the source's HEAD
    (a bare git dir or a checkout; a plain folder without git: commit "unknown")."""
    source = Path(source)
    try:
        commit = _git(source, "rev-parse", "HEAD").decode().strip()
        paths = [p for p in _git(source, "ls-tree", "-r", "--name-only", "HEAD").decode().splitlines()
                 if p == "LICENSE" or (p.startswith("weight_statistics/") and p.endswith(".npy"))]
        return commit, {p: _git(source, "show", f"HEAD:{p}") for p in paths}
    except (subprocess.CalledProcessError, FileNotFoundError):
        files = sorted(source.glob("weight_statistics/*.npy")) + [source / "LICENSE"]
        return "unknown", {str(f.relative_to(source)): f.read_bytes() for f in files if f.exists()}


def load_npy(data: bytes):
    """The array in one .npy file's bytes, or None where it is an object array (pickled)."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError:
        return None


def name_parts(path: str):
    """'weight_statistics/1.3b_attn_qkv_std_list.npy' -> ('1.3b', 'attn_qkv', 'std', False)."""
    stem = Path(path).name.removesuffix("_list.npy")
    size, rest = stem.split("_", 1)
    bias = rest.endswith("_bias")
    rest = rest.removesuffix("_bias")
    tensor, statistic = rest.rsplit("_", 1)
    return size, tensor, statistic, bias


def tidy(arrays: dict) -> pd.DataFrame:
    """The four matrix roles' weight statistics as rows. A file of one row per checkpoint
    gets steps 1000, 2000, ...; a file with one row fewer (differences between consecutive
    checkpoints) gets the later checkpoint's step."""
    frames = []
    for path, a in sorted(arrays.items()):
        size, tensor, statistic, bias = name_parts(path)
        if bias or tensor not in ROLES or statistic not in STATISTICS or a is None or a.ndim != 2:
            continue
        offset = 1 if statistic == "diff" or a.shape[0] == 141 else 0
        steps = FIRST_STEP + STEP_EVERY * (np.arange(a.shape[0]) + offset)
        step, block = np.meshgrid(steps, np.arange(a.shape[1]), indexing="ij")
        frames.append(pd.DataFrame({"size": size, "role": ROLES[tensor], "statistic": statistic,
                                    "step": step.ravel(), "block": block.ravel(), "value": a.ravel()}))
    out = pd.concat(frames, ignore_index=True)[COLUMNS]
    out["size"] = pd.Categorical(out["size"], SIZES, ordered=True)
    return out.sort_values(["size", "role", "statistic", "step", "block"], kind="stable").reset_index(drop=True)


def identical_files(arrays: dict) -> list[list[str]]:
    """Pairs of numeric upstream files (any tensor, weights or biases) that hold exactly the
    same numbers."""
    numeric = {p: a for p, a in arrays.items() if a is not None}
    return [[a, b] for a, b in itertools.combinations(sorted(numeric), 2)
            if numeric[a].shape == numeric[b].shape and np.array_equal(numeric[a], numeric[b])]


def provenance(commit: str, files: dict, arrays: dict, used: set) -> dict:
    left_out = {}
    for p, a in sorted(arrays.items()):
        if p in used:
            continue
        size, tensor, statistic, bias = name_parts(p)
        left_out[p] = ("object array (pickled Python lists): never unpickled" if a is None else
                       "bias vector: the book analyses weight matrices" if bias else
                       "not one of the four matrix roles the book analyses")
    return {
        "repository": f"https://github.com/{REPO}", "commit": commit, "licence": "MIT (LICENSE, copied unchanged)",
        "generated_by": "scripts/vendor_published_stats.py",
        "steps": f"row i of a per-checkpoint file is step {FIRST_STEP} + {STEP_EVERY} i (an assumption the "
                 "files do not state; audited in analysis.published)",
        "roles": ROLES,
        "sha256": {p: hashlib.sha256(b).hexdigest() for p, b in sorted(files.items())},
        "used": sorted(used), "left_out": left_out, "identical_files": identical_files(arrays),
    }


def build(source: Path) -> tuple[pd.DataFrame, dict, bytes]:
    """-> (tidy table, provenance, LICENSE bytes)"""
    commit, files = read_files(source)
    if "LICENSE" not in files or not any(p.endswith(".npy") for p in files):
        raise SystemExit(f"{source}: expected LICENSE and weight_statistics/*.npy ({REPO})")
    arrays = {p: load_npy(b) for p, b in files.items() if p.endswith(".npy")}
    table = tidy(arrays)
    used = {p for p, a in arrays.items() if a is not None and a.ndim == 2 and not name_parts(p)[3]
            and name_parts(p)[1] in ROLES and name_parts(p)[2] in STATISTICS}
    return table, provenance(commit, files, arrays, used), files["LICENSE"]


def write(table: pd.DataFrame, prov: dict, licence: bytes, out: Path) -> None:
    """Write the three files; gzip without a timestamp, so the bytes depend on the data only."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from analysis.files import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    text = table.to_csv(index=False, float_format="%.17g").encode()
    with atomic_path(out / "stats.csv.gz") as tmp, open(tmp, "wb") as f:
        # No timestamp and a fixed inner name: gzip would otherwise record the temporary file's.
        with gzip.GzipFile(filename="stats.csv", mode="wb", fileobj=f, mtime=0) as z:
            z.write(text)
    with atomic_path(out / "provenance.json") as tmp:
        tmp.write_text(json.dumps(prov, indent=1) + "\n")
    with atomic_path(out / "LICENSE") as tmp:
        tmp.write_bytes(licence)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help=f"checkout or bare git dir of {REPO}")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "analysis/data/pythia_published")
    args = p.parse_args(argv)
    table, prov, licence = build(args.source)
    write(table, prov, licence, args.out)
    print(f"{len(table)} rows from {len(prov['used'])} files at {prov['commit']} -> {args.out}")


if __name__ == "__main__":
    main()

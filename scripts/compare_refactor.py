"""What the results-layer refactor changed on the smoke suite, and what it did not.

Builds the smoke suite and its spectra with the code at OLD (default 566f154, the last
commit before the results layer) in a temporary git worktree, then compares, matrix by
matrix, with the current code for the runs both have with the same settings (`raw`):
singular values, entry kurtosis and std, the logistic fit, and every measure both compute
from the weights alone. Prints counts; exits non-zero on a difference.

    python scripts/compare_refactor.py [OLD]
"""

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD_SIDE = """
import pickle, sys
from analysis import compute, config
cfg = config.load("smoke", root=sys.argv[1])
every = compute.spectra(cfg, progress=False, blocks="all")
table = compute.measures(every, cfg["cache_dir"])
keep = ("run", "step", "block", "role", "sv", "kurtosis", "std", "logistic_loc", "logistic_scale")
pickle.dump({"records": [{k: r[k] for k in keep} for r in every], "measures": table}, open(sys.argv[2], "wb"))
"""
SAME_MEASURES = {"frobenius": "frobenius", "spectral_norm": "spectral_norm", "stable_rank": "stable_rank",
                 "kurtosis": "kurtosis", "std": "std", "spikes": "spikes", "near_zero_mp": "below_mp_edge",
                 "n_singular_values": "n_singular_values", "alpha": "alpha"}


def old_results(commit: str, work: Path) -> dict:
    tree = work / "old"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    try:
        out = work / "old.pkl"
        # The same environment (BLAS settings included: another kernel rounds differently).
        env = {**os.environ, "ANALYSIS_CACHE_DIR": str(work / "old-cache"), "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, "-c", OLD_SIDE, str(tree), str(out)], check=True, env=env, cwd=tree)
        return pickle.loads(out.read_bytes())
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main(commit: str = "566f154") -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        old = old_results(commit, work)
        os.environ["ANALYSIS_CACHE_DIR"] = str(work / "new-cache")
        from analysis import config, results

        cfg = config.load("smoke", root=ROOT)
        same_runs = [n for n, spec in cfg["tiny"]["runs"].items() if spec == {"data": "raw", "seed": 1234}]
        r = results.Results(cfg)
        new = {(x["run"], x["step"], x["block"], x["role"]): x for x in r.spectra}
        fields = ("sv", "kurtosis", "std", "logistic_loc", "logistic_scale")
        compared = differ = 0
        for o in (o for o in old["records"] if o["run"] in same_runs):
            n = new[(o["run"], o["step"], o["block"], o["role"])]
            for k in fields:
                compared += 1
                differ += not np.array_equal(np.asarray(o[k]), np.asarray(n[k]))
        print(f"runs compared: {same_runs}; matrices: {compared // len(fields)}; "
              f"fields ({', '.join(fields)}) bit-identical: {compared - differ} of {compared}")
        om = old["measures"][old["measures"].measure.isin(SAME_MEASURES) & old["measures"].run.isin(same_runs)]
        om = om.assign(measure=om.measure.map(SAME_MEASURES)).set_index(["run", "step", "block", "role", "measure"])
        nm = r.measures.set_index(["run", "step", "block", "role", "measure"])["value"].loc[om.index]
        exact = om["value"].to_numpy() == nm.to_numpy()
        rel = np.abs(om["value"].to_numpy() - nm.to_numpy()) / np.maximum(np.abs(om["value"].to_numpy()), 1e-300)
        for m in SAME_MEASURES.values():
            sel = om.index.get_level_values("measure") == m
            print(f"  {m}: {int(exact[sel].sum())} of {int(sel.sum())} identical, max relative difference {rel[sel].max():.1e}")
        return 0 if differ == 0 and rel.max() < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

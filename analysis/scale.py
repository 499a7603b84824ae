"""The scale study (report/scale.qmd): each size of `analysis.sizes` analysed as the book
analyses one model (Results.size), its verdicts and key measures gathered by parameter count."""

import pandas as pd

from . import intervals as iv
from . import verdicts

TAIL_PART = "tail heavier than Gaussian (σmax/rms)"  # claim 1's measure shown against size


def no_comparison(runs: dict) -> str:
    """Why claim 4 has no rows for these runs ("" if it has): it needs a treatment and replicas."""
    missing = [w for w, ok in (("no deduplicated run", runs.get("treatment")), ("no replica runs", runs.get("replicas")))
               if not ok]
    return "; ".join(missing)


def verdicts_by_size(r) -> pd.DataFrame:
    """One row per size and claim part (verdicts.summary of that size's verdicts, plus size,
    parameters and detail). A size without a treatment or without replicas has no noise
    floor for the run comparison: its claim 4 is one undecided row saying why."""
    frames = []
    for spec in r.cfg["sizes"]:
        s = r.size(spec["name"])
        rows = verdicts.summary(s.verdicts, s.reference).assign(detail="")
        why = no_comparison(spec["runs"])
        if why and not (rows["claim"] == 4).any():
            rows = pd.concat([rows, pd.DataFrame([{
                "claim": 4, "part": "deduplicated and raw runs alike", "measure": "treatment vs replica",
                "effect": "—", "intervals": "", "holds": 0, "does not hold": 0, "undecided": 1,
                "verdict": iv.UNDECIDED, "detail": f"undecided: {why}, so no noise floor to judge it against"}])],
                ignore_index=True)
        frames.append(rows.assign(size=spec["name"], parameters=spec["parameters"]))
    return pd.concat(frames, ignore_index=True)


def tail_by_size(r) -> pd.DataFrame:
    """Claim 1's tail measure of each size's reference run at its last step (configured
    block), per role: σmax/rms over the Gaussian draws' mean, with the draws' band (what
    noise alone gives) and the verdict. -> size, parameters, role, effect, noise_low, noise_high, verdict"""
    frames = []
    for spec in r.cfg["sizes"]:
        s = r.size(spec["name"])
        v = s.verdicts
        rows = v[(v["claim"] == 1) & (v["part"] == TAIL_PART) & (v["run"] == s.reference)]
        frames.append(rows[["role", "effect", "noise_low", "noise_high", "verdict"]].assign(
            size=spec["name"], parameters=spec["parameters"]))
    return pd.concat(frames, ignore_index=True)


def claim_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim: in how many sizes each part-verdict comes out (holds, does not hold,
    undecided, mixed), counted over the sizes' claim parts."""
    return (table.groupby(["claim", "verdict"]).size().unstack(fill_value=0)
            .reindex(columns=[iv.HOLDS, iv.FAILS, iv.UNDECIDED, "mixed"], fill_value=0))

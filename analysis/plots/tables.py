"""Display tables for the chapters: result tables in, a display-ready DataFrame or Markdown
string out. Shaping only (selecting columns, formatting numbers); nothing is computed here
that a verdict or figure depends on.

Chapters append helpers here; each takes the results' tables and plain values.
"""

import numpy as np
import pandas as pd


def sig(x, digits: int = 3) -> str:
    """A number to `digits` significant digits ('—' for a missing one)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}"


def interval(low, high, digits: int = 3) -> str:
    """'[low, high]' to `digits` significant digits, '—' where either end is missing."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "—"
    return f"[{sig(low, digits)}, {sig(high, digits)}]"


VERDICT_COLUMNS = ("part", "run", "role", "measure", "effect", "interval", "noise band", "resolution", "verdict")


def verdicts_frame(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Verdict rows (analysis.verdicts) as strings: part, run, role, measure, effect, its
    interval [low, high] ('—' where the effect is a single measured value, low = high: its
    noise is the noise band), the noise band [noise_low, noise_high] ('—' where the
    interval already includes the noise), the resolution (smallest effect detected with 80%
    power, '—' where not stated) and the verdict."""
    rows = []
    for _, v in table.iterrows():
        point = v["low"] == v["high"] == v["effect"]
        rows.append({"part": v["part"], "run": v["run"], "role": v["role"], "measure": v["measure"],
                     "effect": sig(v["effect"], digits),
                     "interval": "—" if point else interval(v["low"], v["high"], digits),
                     "noise band": interval(v["noise_low"], v["noise_high"], digits),
                     "resolution": sig(v["resolution"], digits), "verdict": v["verdict"]})
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def verdicts_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """verdicts_frame as a Markdown table (a line saying so where there are no rows)."""
    if table.empty:
        return "*No verdict rows for this selection.*"
    return verdicts_frame(table, digits).to_markdown(index=False)

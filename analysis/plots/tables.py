"""Display tables for the chapters: result tables in, a display-ready DataFrame or Markdown
string out. Shaping only (selecting columns, formatting numbers); nothing is computed here
that a verdict or figure depends on.

Chapters append helpers here; each takes the results' tables and plain values.
"""

import re

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


# Column names as readers see them; any other snake_case name is spelled out by `label`.
LABELS = {"median_r": "median r", "max_rel_diff": "largest relative difference", "at_step": "at step",
          "content_hash": "content hash", "nonfinite": "non-finite values", "n_layers": "blocks"}

WIDEST_SHARE = 28  # characters a column of long text asks for before it wraps
LINE = 100  # characters across the page (or the HTML column) at the tables' text size
INSET = 2  # characters of padding per column


def label(name) -> str:
    """A column name for readers: LABELS, else snake_case as words ('max_rel_diff' -> 'max rel diff')."""
    return LABELS.get(name, str(name).replace("_", " "))


def _cell(x) -> str:
    text = "" if x is None or (isinstance(x, float) and np.isnan(x)) else str(x)
    return text.replace("|", "\\|").replace("\n", " ")


def _longest_word(texts) -> int:
    """Longest run of characters a line cannot break: words, split after hyphens."""
    return max((len(w) for t in texts for w in re.split(r"\s+|(?<=-)", t)), default=1)


def column_widths(cells: dict, line: int = LINE) -> dict:
    """Relative width per column {name: [header, *cells]} -> {name: characters}. Every
    column gets its longest word first (a word never breaks, so a narrower column prints
    over its neighbour in the PDF); what is left of the line goes to columns of long text,
    in proportion to how much more than their longest word they hold (up to WIDEST_SHARE)."""
    floor = {c: _longest_word(t) + INSET for c, t in cells.items()}
    want = {c: max(floor[c], min(max(len(x) for x in t), WIDEST_SHARE) + INSET) for c, t in cells.items()}
    spare, wish = line - sum(floor.values()), sum(want[c] - floor[c] for c in cells)
    if spare >= wish:
        return want
    if spare <= 0 or wish == 0:
        return floor
    return {c: floor[c] + round(spare * (want[c] - floor[c]) / wish) for c in cells}


def markdown(frame: pd.DataFrame, widths: dict | None = None) -> str:
    """A DataFrame as a pipe table with readable headers (`label`) and column widths that
    fit the words (`column_widths`; `widths`: {column: characters} overrides some).

    Pandoc takes the relative column widths of a pipe table with a line longer than 72
    characters from its separator dashes (a narrower table gets its columns' natural widths);
    pandas' to_markdown draws them as long as the longest cell, which gives a column of
    long words too little room (in the PDF the words then run into the next column).
    Numbers are right-aligned; '|' inside cells is escaped (measure names such as
    |Δ log‖W‖_F| would otherwise split a cell)."""
    heads = [label(c) for c in frame.columns]
    cells = {h: [h, *(_cell(x) for x in frame[c])] for h, c in zip(heads, frame.columns)}
    w = {**column_widths(cells), **{label(k): v for k, v in (widths or {}).items()}}
    right = {label(c) for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    rule = [("-" * (w[h] - 1) + ":") if h in right else "-" * w[h] for h in heads]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(cells[h][i] for h in heads) + " |" for i in range(1, len(frame) + 1)]
    return "\n".join(lines)


VERDICT_COLUMNS = ("part", "run", "role", "measure", "effect [interval]", "noise band", "resolution", "verdict",
                   "detail")


def verdicts_frame(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Verdict rows (analysis.verdicts) as strings: part, run, role, measure, the effect with
    its interval, 'effect [low, high]' (the effect alone where it is a single measured value,
    low = high: its noise is the noise band), the noise band [noise_low, noise_high] ('—'
    where the interval already includes the noise), the resolution (smallest effect detected
    with 80% power, '—' where not stated), the verdict and the row's detail (the nearest
    control, the replicas judged against, why a row is undecided); the detail column only
    where some row has one."""
    rows = []
    for _, v in table.iterrows():
        point = v["low"] == v["high"] == v["effect"]
        detail = v.get("detail", "")
        effect, iv = sig(v["effect"], digits), "—" if point else interval(v["low"], v["high"], digits)
        rows.append({"part": v["part"], "run": v["run"], "role": v["role"], "measure": v["measure"],
                     "effect [interval]": effect if iv == "—" else f"{effect} {iv}",
                     "noise band": interval(v["noise_low"], v["noise_high"], digits),
                     "resolution": sig(v["resolution"], digits), "verdict": v["verdict"],
                     "detail": detail if isinstance(detail, str) else ""})
    out = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    return out if (out["detail"] != "").any() else out.drop(columns="detail")


def verdicts_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """verdicts_frame as a Markdown table (a line saying so where there are no rows)."""
    if table.empty:
        return "*No verdict rows for this selection.*"
    return markdown(verdicts_frame(table, digits))


def _with_role(run: str, roles: dict) -> str:
    return f"{run} ({roles[run]})" if run in roles else run


# Weights' measures with the baseline kind whose draws give each one's noise band.
BANDED_MEASURES = {"tail": ("σmax/rms", "gaussian"), "alpha": ("α", "gaussian"),
                   "near_zero": ("near-zero", "gaussian"), "w1_gaussian": ("W1 Gaussian", "gaussian"),
                   "w1_logistic": ("W1 logistic", "logistic"), "w1_shuffled": ("W1 shuffled", "shuffled")}
PLAIN_MEASURES = {"spikes": "spikes", "stable_rank": "stable rank", "kurtosis": "excess kurtosis"}


def measures_markdown(measures: pd.DataFrame, draws: pd.DataFrame, runs: dict, block: int, step: int, level: float,
                      banded: dict = BANDED_MEASURES, plain: dict = PLAIN_MEASURES, digits: int = 3) -> str:
    """The weights' measures of one block at one step, a row per (run, role): each banded
    measure as 'value [low, high]', the band being the `level` prediction band of the same
    measure over that kind's draws (analysis.intervals.prediction_band: where one more draw
    falls; as the verdicts have it: α's on the log scale, near-zero's clipped to [0, 1]);
    plain measures as values. runs: {run: declared role}, in row order."""
    from ..intervals import measure_band

    m = measures[(measures.block == block) & (measures.step == step)]
    d = draws[(draws.block == block) & (draws.step == step)]
    value = {(x.run, x.role, x.measure): x.value for x in m.itertuples()}
    rows = []
    for run in runs:
        for role in dict.fromkeys(m[m.run == run].role):
            row = {"run": _with_role(run, runs), "role": role}
            for measure, (label, kind) in banded.items():
                sel = d[(d.run == run) & (d.role == role) & (d.kind == kind) & (d.measure == measure)]["value"]
                lo, hi = measure_band(sel, measure, level)
                row[label] = f"{sig(value[(run, role, measure)], digits)} {interval(lo, hi, digits)}"
            for measure, label in plain.items():
                row[label] = sig(value[(run, role, measure)], digits)
            rows.append(row)
    return markdown(pd.DataFrame(rows))


def claims_markdown(summary: pd.DataFrame, claims: dict) -> str:
    """analysis.verdicts.summary rows under their claim: the claim's number and text on its
    first row, then per part the measure, the range of effects, the reference run's
    intervals (or value against its noise band), the rows' counts (holds / does not hold /
    undecided, one column; a summary row's own "counts" text where it has one, as the wiring
    comparison's agree / differ / undecided) and the verdict."""
    rows, seen = [], set()
    for _, s in summary.sort_values("claim", kind="stable").iterrows():
        first = s["claim"] not in seen
        seen.add(s["claim"])
        effect = "—" if s["effect"].startswith("nan") else s["effect"]
        rows.append({"claim": f"**{s['claim']}.** {claims[s['claim']]}" if first else "", "part": s["part"],
                     "measure": s["measure"], "effect": effect,
                     "reference run: interval, or value vs noise band": s.get("intervals", ""),
                     "rows: holds / does not / undecided": s["counts"] if isinstance(s.get("counts"), str) else
                     " / ".join(str(int(s[k])) for k in ("holds", "does not hold", "undecided")),  # ints, whatever else was concatenated
                     "verdict": f"**{s['verdict']}**"})
    return markdown(pd.DataFrame(rows))


def audit_summary_markdown(audit: pd.DataFrame, runs: dict | None = None) -> str:
    """Per run (in the order of `runs`, {run: declared role}, when given): steps audited,
    steps flagged, non-finite values found."""
    order = list(runs or {}) + [x for x in dict.fromkeys(audit["run"]) if x not in (runs or {})]
    rows = []
    for run in order:
        g = audit[audit["run"] == run]
        rows.append({"run": run, **({"role": runs.get(run, "")} if runs else {}), "steps": len(g),
                     "flagged": int((g["flag"] != "").sum()), "non-finite values": int(g["nonfinite"].sum())})
    return markdown(pd.DataFrame(rows))


def audit_flags_markdown(audit: pd.DataFrame) -> str:
    """Every flagged step with what the audit found (content hash shortened to 12 digits)."""
    flagged = audit[audit["flag"] != ""]
    shown = flagged.assign(content_hash=flagged["content_hash"].str[:12])[["run", "step", "content_hash", "flag", "error"]]
    return markdown(shown)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(x: float) -> str:
    """1e-06 -> '10⁻⁶', 2.5e-06 -> '2.5·10⁻⁶' (for prose)."""
    exp = int(np.floor(np.log10(abs(x))))
    mantissa = x / 10.0**exp
    head = "" if np.isclose(mantissa, 1.0) else f"{mantissa:.3g}·"
    return f"{head}10{str(exp).translate(_SUPERSCRIPT)}"


def settings_markdown(settings: dict, extra: dict | None = None) -> str:
    """A settings mapping as a (setting, value) table; `extra` rows (derived values) after it."""
    rows = [{"setting": k, "value": str(v)} for k, v in {**settings, **(extra or {})}.items()]
    return markdown(pd.DataFrame(rows))


def architectures_markdown(runs: pd.DataFrame, compared: pd.DataFrame) -> str:
    """Claims 1–3 side by side for two block wirings, a row per claim part: each
    architecture's per-run verdict counts over its runs and matrices (the rows the comparison
    pairs; claim 3 too, each run's own slope), and the part's comparison counts (agree /
    differ after Holm / undecided, per matrix). runs: architecture_runs; compared:
    architecture_verdicts."""
    labels = list(dict.fromkeys(runs["architecture"]))
    runs = runs[runs["scope"] == "run"]
    rows = []
    for (claim, part), g in compared.groupby(["claim", "part"], sort=False):
        row = {"claim": claim, "part": part}
        for label in labels:
            own = runs[(runs["architecture"] == label) & (runs["claim"] == claim) & (runs["part"] == part)]
            c = own["verdict"].value_counts()
            row[f"{label} runs: holds / not / undecided"] = (f"{c.get('holds', 0)} / {c.get('does not hold', 0)} / "
                                                              f"{c.get('undecided', 0)}")
        c = g["verdict"].value_counts()
        row["wirings: agree / differ / undecided"] = " / ".join(str(c.get(x, 0)) for x in ("agree", "differ", "undecided"))
        differ = g[g["verdict"] == "differ"]
        row["differ (Holm)"] = ", ".join(differ["role"]) if len(differ) else "—"
        rows.append(row)
    return markdown(pd.DataFrame(rows))

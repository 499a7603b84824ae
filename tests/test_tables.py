"""Display tables (analysis.plots.tables): headers readers can read, columns wide enough
for their words, so the PDF never prints one column over the next."""

import pandas as pd

from analysis.plots import tables


def _rule(md: str) -> list[int]:
    """Dashes per column of a pipe table's separator line: pandoc's relative widths."""
    return [len(c.strip().rstrip(":")) for c in md.splitlines()[1].strip("|").split("|")]


def test_raw_column_names_get_labels():
    md = tables.markdown(pd.DataFrame({"median_r": [0.5], "max_rel_diff": [1e-3], "at_step": [4], "some_count": [1]}))
    head = md.splitlines()[0]
    assert "median r" in head and "largest relative difference" in head and "at step" in head
    assert "some count" in head and "_" not in head


def test_every_column_is_at_least_as_wide_as_its_longest_word():
    frame = pd.DataFrame({"part": ["tail heavier than Gaussian (power-law α), judged at the last step"] * 3,
                          "run": ["deduplicated"] * 3, "role": ["mlp_out"] * 3,
                          "detail": ["undecided: no replica shares the treatment's start " * 3] * 3})
    widths = dict(zip(frame.columns, _rule(tables.markdown(frame))))
    # Relative widths: the short-word columns' share must hold their words; with
    # to_markdown's dashes (as long as the longest cell) "deduplicated" got 12 of ~250.
    total = sum(widths.values())
    assert widths["run"] / total >= (len("deduplicated") + tables.INSET) / tables.LINE - 1e-9
    assert widths["role"] >= len("mlp_out") + tables.INSET
    assert widths["detail"] > widths["run"]  # long text gets what is left of the line


def test_a_narrow_table_keeps_its_natural_widths():
    md = tables.markdown(pd.DataFrame({"run": ["raw", "deduped"], "steps": [18, 18]}))
    assert max(len(line) for line in md.splitlines()) <= 72  # pandoc then sizes columns itself
    assert md.splitlines()[1].endswith(":|")  # numbers right-aligned


def test_pipes_inside_cells_are_escaped():
    md = tables.markdown(pd.DataFrame({"measure": ["|Δ log‖W‖_F|"], "value": ["1"]}))
    assert md.splitlines()[2].count("\\|") == 2


def test_claims_table_counts_rows_in_one_column():
    summary = pd.DataFrame([{"claim": 1, "part": "p", "measure": "m", "effect": "1–2", "intervals": "",
                             "holds": 3, "does not hold": 1, "undecided": 2, "verdict": "mixed"}])
    md = tables.claims_markdown(summary, {1: "a claim"})
    assert "rows: holds / does not / undecided" in md and "| 3 / 1 / 2 |" in md


def test_wiring_comparison_rows_in_the_claims_table_show_counts_only():
    from analysis import verdicts

    compared = pd.DataFrame([{"claim": c, "verdict": v} for c, v in
                             ((1, "agree"), (1, "undecided"), (2, "differ"), (3, "agree"))])
    summary = verdicts.architecture_summary(compared).assign(claim=6)
    md = tables.claims_markdown(summary, {6: "wirings"})
    assert "| 1 agree / 0 differ / 1 undecided |" in md and "| 0 agree / 1 differ / 0 undecided |" in md
    assert "holds" not in md.split("\n", 2)[2]  # no "holds" on the comparison's rows
    assert md.count("| — |") >= 3  # no effect range over incommensurable units


def test_side_by_side_counts_the_per_run_rows_the_comparison_pairs():
    """Claim 3's pooled rows are not what the comparison pairs: the side-by-side table counts
    per-run rows for every claim, so its counts match the comparison's detail."""
    runs = pd.DataFrame([
        {"architecture": a, "claim": 3, "part": "p", "role": "qkv", "scope": s, "verdict": v}
        for a in ("parallel", "sequential")
        for s, v in (("pooled", "holds"), ("run", "undecided"), ("run", "holds"))])
    compared = pd.DataFrame([{"claim": 3, "part": "p", "role": "qkv", "verdict": "undecided"}])
    md = tables.architectures_markdown(runs, compared)
    assert md.splitlines()[2].count(" 1 / 0 / 1 ") == 2 and "| 0 / 0 / 1 |" in md

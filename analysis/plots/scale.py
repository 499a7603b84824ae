"""Figures of the scale chapter: verdicts and key measures against parameter count."""

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap

from . import style

VERDICT_ORDER = ("does not hold", "undecided", "mixed", "holds")


def verdicts_and_tail(table: pd.DataFrame, tail: pd.DataFrame):
    """Left: every claim part's verdict (colour) per size, sizes on x in order of parameter
    count. Right: claim 1's tail measure of each size's reference run per role against
    parameter count (log), with the Gaussian draws' band (shaded)."""
    fig, axes = style.figure(1, 2, width=12, height=5.5, gridspec_kw={"width_ratios": [1.3, 1]})
    ax, bx = axes[0]
    sizes = table.drop_duplicates("size").sort_values("parameters")
    parts = table.drop_duplicates(["claim", "part"]).sort_values("claim", kind="stable")
    labels = [f"{c}. {p}" for c, p in zip(parts["claim"], parts["part"])]
    code = {v: i for i, v in enumerate(VERDICT_ORDER)}
    grid = np.full((len(parts), len(sizes)), np.nan)
    for i, (c, p) in enumerate(zip(parts["claim"], parts["part"])):
        for j, name in enumerate(sizes["size"]):
            hit = table[(table["size"] == name) & (table["claim"] == c) & (table["part"] == p)]
            if len(hit):
                grid[i, j] = code[hit["verdict"].iloc[0]]
    colors = style.verdict_colors()
    ax.imshow(grid, cmap=ListedColormap([colors[v] for v in VERDICT_ORDER]), vmin=-0.5, vmax=len(VERDICT_ORDER) - 0.5,
              aspect="auto", interpolation="none")
    ax.set_xticks(range(len(sizes)), [f"{n}\n{p:.2g}" for n, p in zip(sizes["size"], sizes["parameters"])])
    ax.set_yticks(range(len(parts)), [style.wrap(t, 48) for t in labels], fontsize=7)
    ax.set_xlabel("model size (parameters), by parameter count")
    ax.grid(False)
    from matplotlib.patches import Patch

    ax.legend([Patch(color=colors[v]) for v in reversed(VERDICT_ORDER)], list(reversed(VERDICT_ORDER)),
              loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize=8, title="part verdict (blank: not tested)")
    for role, g in tail.sort_values("parameters").groupby("role", sort=False):
        c = style.ROLE_COLORS[role]
        bx.plot(g["parameters"], g["effect"], marker="o", color=c, label=style.ROLE_LABELS[role])
        bx.fill_between(g["parameters"], g["noise_low"], g["noise_high"], color=c, alpha=style.BAND_ALPHA, linewidth=0)
    bx.axhline(1.0, color="0.3", linewidth=0.8, linestyle=":")
    bx.set_xscale("log")
    bx.set_xlabel("parameters")
    bx.set_ylabel("σmax/rms ÷ Gaussian draws' mean (last step, reference)")
    bx.legend(fontsize=8, title="matrix (band: Gaussian draws)")
    return fig

"""Parallel against sequential residual blocks: claims 1–3 per run side by side, the depth
profiles claim 3 fits, and the middle block's spectra of each architecture's reference."""

import numpy as np
import pandas as pd

from . import style
from .weight_distribution import draw_panel, fixed_limits


def arch_color(label: str):
    return style.ARCH_COLORS.get(label, "0.5")


def effects_by_run(rows: pd.DataFrame):
    """One panel per claim part: each run's effect per matrix role, coloured by architecture,
    the architecture's reference filled and its replicas open, with the row's own interval
    where it has one (rows whose value is judged against a band have none). rows:
    architecture_runs, scope "run". -> Figure"""
    rows = rows[rows["scope"] == "run"]
    parts = list(dict.fromkeys(zip(rows["claim"], rows["part"])))
    labels = list(dict.fromkeys(rows["architecture"]))
    cols = 2
    nrows = -(-len(parts) // cols)
    fig, axes = style.figure(nrows, cols, width=10.0, height=2.3 * nrows + 0.8)
    for ax, (claim, part) in zip(axes.flat, parts):
        g = rows[(rows["claim"] == claim) & (rows["part"] == part)]
        roles = list(dict.fromkeys(g["role"]))
        for i, label in enumerate(labels):
            runs = list(dict.fromkeys(g[g["architecture"] == label]["run"]))
            for k, run in enumerate(runs):
                h = g[(g["architecture"] == label) & (g["run"] == run)].set_index("role").reindex(roles)
                x = np.arange(len(roles)) + (i - (len(labels) - 1) / 2) * 0.3 + (k - (len(runs) - 1) / 2) * 0.08
                y = h["effect"].to_numpy(dtype=float)
                has = (h["low"] != h["high"]).to_numpy() & np.isfinite(h["low"].to_numpy(dtype=float))
                err = np.array([y - h["low"].to_numpy(dtype=float), h["high"].to_numpy(dtype=float) - y])
                ax.errorbar(x[has], y[has], yerr=err[:, has], fmt="none", ecolor=arch_color(label), elinewidth=1)
                ax.plot(x, y, "o", color=arch_color(label), markerfacecolor=arch_color(label) if k == 0 else "white",
                        markersize=6)
        ax.set_xticks(range(len(roles)), [style.ROLE_LABELS[r] for r in roles], fontsize="x-small")
        ax.set_title(f"claim {claim}: {part}", fontsize="small")
        ax.set_ylabel(g["measure"].iloc[0], fontsize="xx-small")
        ax.tick_params(axis="y", labelsize="x-small")
    for ax in axes.flat[len(parts):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", marker="o", color=arch_color(a), markerfacecolor=fill, label=f"{a} ({kind})")
               for a in labels for kind, fill in (("reference", arch_color(a)), ("replica", "white"))]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small")
    return fig


BLOCK_QUANTITIES = {"excess_w1": "excess W1 of σ/rms to Gaussian draws", "tail_ratio": "σmax/rms ÷ Gaussian draws'"}


def profiles_by_block(blocks: pd.DataFrame):
    """Claim 3's quantities (rows) per matrix role (columns) against block at each run's last
    step: a line per run, coloured by architecture, styled by the run's role within it.
    blocks: architecture_blocks. -> Figure"""
    roles = list(dict.fromkeys(blocks["role"]))
    fig, axes = style.figure(len(BLOCK_QUANTITIES), len(roles), width=min(10.0, 2.5 * len(roles)),
                             height=2.2 * len(BLOCK_QUANTITIES) + 0.8, sharex=True)
    for i, (q, label) in enumerate(BLOCK_QUANTITIES.items()):
        for j, role in enumerate(roles):
            ax = axes[i, j]
            for (arch, run, run_role), g in blocks[blocks["role"] == role].groupby(
                    ["architecture", "run", "run_role"], sort=False):
                g = g.sort_values("block")
                ax.plot(g["block"], g[q], marker="o", markersize=3, color=arch_color(arch), **style.run_style(run_role))
            ax.tick_params(labelsize="x-small")
            if i == 0:
                ax.set_title(style.ROLE_LABELS[role], fontsize="small")
            if i == len(BLOCK_QUANTITIES) - 1:
                ax.set_xlabel("block", fontsize="small")
        axes[i, 0].set_ylabel(label, fontsize="x-small")
    from matplotlib.lines import Line2D

    runs = blocks.drop_duplicates("run")
    handles = [Line2D([], [], color=arch_color(x.architecture), **style.run_style(x.run_role),
                      label=f"{x.run} ({x.architecture} {x.run_role})") for x in runs.itertuples()]
    fig.legend(handles=handles, loc="outside lower center", ncol=style.legend_columns(len(handles)), fontsize="small")
    return fig


def spectra_side_by_side(records: dict, bins: int):
    """Architectures (rows) × matrix roles (columns): singular-value histograms of one run
    per architecture at one step and block, against the first Gaussian and logistic draw and
    Marchenko–Pastur; axes shared per role. records: {architecture: [spectrum records]}. -> Figure"""
    labels = list(records)
    every = [x for rs in records.values() for x in rs]
    limits = fixed_limits(every, bins)
    roles = list(dict.fromkeys(x["role"] for x in every))
    fig, axes = style.figure(len(labels), len(roles), width=2.5 * len(roles) + 0.4, height=2.3 * len(labels) + 0.6)
    for i, label in enumerate(labels):
        for j, role in enumerate(roles):
            rec = next(x for x in records[label] if x["role"] == role)
            draw_panel(axes[i, j], rec, limits[role], title=style.ROLE_LABELS[role] if i == 0 else "")
            axes[i, j].tick_params(labelsize="x-small")
        first = records[label][0]
        axes[i, 0].set_ylabel(f"{label}\n{first['run']} · step {first['step']}", fontsize="small", color=arch_color(label))
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize="x-small")
    return fig

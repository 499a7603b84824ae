"""Figures of the published Pythia statistics chapter: tables of the results in, Figures out.

Models are the five Pythia sizes (one ordered palette, smallest lightest) and this build
(dark grey, dashed), so a reader sees where the tiny suite sits among them.
"""

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter

from . import style

ROLES = ("qkv", "attn_out", "mlp_in", "mlp_out")
OWN = "this build"


def _model_styles(models: list[str]) -> dict:
    pythia = [m for m in models if not m.startswith(OWN)]
    colors = dict(zip(pythia, style.sequential(len(pythia))))
    return {m: ({"color": colors[m], "linestyle": "-"} if m in colors else {"color": style.TOY_COLOR, "linestyle": "--"})
            for m in models}


def _legend(fig, styles: dict, title: str = "") -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], **s) for s in styles.values()]
    fig.legend(handles, list(styles), loc="outside lower center", ncol=min(len(styles), 3), fontsize="small",
               title=title or None, title_fontsize="small")


def _log_axis(ax) -> None:
    """Log scale labelled with plain numbers (the values span one or two decades)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize="xx-small")


def _relative(g: pd.DataFrame) -> np.ndarray:
    return g["block"].to_numpy(dtype=float) / max(g["block"].max(), 1)


def by_depth(table: pd.DataFrame, ylabel: str, log: bool = False, reference: float | None = None):
    """A per-matrix value (model, role, step, block, value) at each model's last step
    against relative depth (block / (blocks − 1)), one panel per role, one line per model.
    `reference`: a horizontal line (e.g. 1: Gaussian, or the initial value). -> Figure"""
    last = table[table["step"] == table.groupby("model")["step"].transform("max")]
    styles = _model_styles(list(dict.fromkeys(last["model"])))
    fig, axes = style.figure(2, 2, width=8.0, height=6.4, sharex=True)
    for ax, role in zip(axes.ravel(), ROLES):
        for model, s in styles.items():
            g = last[(last["model"] == model) & (last["role"] == role)].groupby("block", as_index=False)["value"].mean()
            ax.plot(_relative(g), g["value"], marker="o", markersize=2.5, linewidth=1.2, **s)
        if reference is not None:
            ax.axhline(reference, color="0.6", linewidth=0.8, linestyle=":")
        if log:
            _log_axis(ax)
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes[1]:
        ax.set_xlabel("relative depth (first block 0, last 1)", fontsize="small")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize="small")
    _legend(fig, styles, "each model at its last checkpoint")
    return fig


def slopes_through_training(slopes: pd.DataFrame):
    """The tail proxy's slope over relative depth (model, role, step, slope, low, high)
    against the share of each model's training, with its t interval shaded; 0: no trend.
    -> Figure"""
    styles = _model_styles(list(dict.fromkeys(slopes["model"])))
    fig, axes = style.figure(2, 2, width=8.0, height=6.4, sharex=True)
    for ax, role in zip(axes.ravel(), ROLES):
        for model, s in styles.items():
            g = slopes[(slopes["model"] == model) & (slopes["role"] == role)].sort_values("step")
            share = g["step"] / g["step"].max()
            ax.plot(share, g["slope"], linewidth=1.1, **s)
            ax.fill_between(share, g["low"], g["high"], color=s["color"], alpha=style.BAND_ALPHA / 2, linewidth=0)
        ax.axhline(0, color="0.4", linewidth=0.8)
        lines = slopes[slopes["role"] == role]["slope"]
        pad = 0.5 * max(float(np.ptp(lines)), 0.1)
        ax.set_ylim(float(lines.min()) - pad, float(lines.max()) + pad)  # bands of few blocks run far off
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes[1]:
        ax.set_xlabel("share of training (step / last step)", fontsize="small")
    for ax in axes[:, 0]:
        ax.set_ylabel("slope of tail ratio over depth", fontsize="small")
    _legend(fig, styles, "shaded: the slope's t interval over blocks")
    return fig


def phase_shift(norms: pd.DataFrame, phase: pd.DataFrame, title: str, threshold: float):
    """One model's QKV norm per block through training (norms: step, block, value), coloured
    by block, with each block's sharpest kink marked (phase: block, step, acceleration,
    shift); right: the acceleration at the kink by block against `threshold`, filled where
    the block is judged a phase shift. -> Figure"""
    blocks = sorted(norms["block"].unique())
    colors = dict(zip(blocks, style.sequential(len(blocks))))
    fig, axes = style.figure(1, 2, width=10.0, height=3.8)
    ax = axes[0, 0]
    for b in blocks:
        g = norms[norms["block"] == b].sort_values("step")
        ax.plot(g["step"], g["value"], color=colors[b], linewidth=1.0)
        kink = phase[phase["block"] == b]["step"].iloc[0]
        if np.isfinite(kink):
            ax.plot([kink], g[g["step"] == kink]["value"], marker="o", markersize=3.5, color=colors[b])
    ax.set_xlabel("step", fontsize="small")
    ax.set_ylabel("‖W_QKV‖_F (from std and mean)", fontsize="small")
    ax.set_title(title, fontsize="small")
    ax = axes[0, 1]
    p = phase.sort_values("block")
    shift = p["shift"].astype(bool)
    ax.scatter(p["block"][shift], p["acceleration"][shift], color="k", s=16, zorder=3, label="phase shift")
    ax.scatter(p["block"][~shift], p["acceleration"][~shift], facecolor="white", edgecolor="k", s=16, zorder=3,
               label="no phase shift")
    ax.axhline(threshold, color="0.5", linewidth=0.8, linestyle="--")
    ax.axhline(1, color="0.7", linewidth=0.8, linestyle=":")
    ax.set_xlabel("block", fontsize="small")
    ax.set_ylabel("slope after ÷ slope before the kink", fontsize="small")
    ax.legend(fontsize="x-small", loc="upper left")
    for a in axes[0]:
        a.tick_params(labelsize="x-small")
    return fig


def scaling(std: pd.DataFrame, tail: pd.DataFrame, models: list[str]):
    """Across models (in the order given): each role's std over its initial std (left) and
    tail ratio (right) at the model's last step, mean over blocks with the range over blocks
    as a bar. -> Figure"""
    fig, axes = style.figure(1, 2, width=10.0, height=3.6, sharex=True)
    x = np.arange(len(models))
    for ax, table, label in ((axes[0, 0], std, "std / initial std"), (axes[0, 1], tail, "max/std tail ratio (1: Gaussian)")):
        last = table[table["step"] == table.groupby("model")["step"].transform("max")]
        for k, role in enumerate(ROLES):
            g = last[last["role"] == role].groupby("model")["value"].agg(["mean", "min", "max"]).reindex(models)
            off = (k - 1.5) * 0.12
            ax.errorbar(x + off, g["mean"], yerr=[g["mean"] - g["min"], g["max"] - g["mean"]], fmt="o", markersize=4,
                        color=style.ROLE_COLORS[role], capsize=2, linewidth=1, label=style.ROLE_LABELS[role])
        ax.axhline(1, color="0.6", linewidth=0.8, linestyle=":")
        _log_axis(ax)
        ax.set_ylabel(label, fontsize="small")
        ax.set_xticks(x, [m.replace("this build: ", "this build\n") for m in models], fontsize="x-small", rotation=20)
        ax.tick_params(labelsize="x-small")
    axes[0, 0].legend(fontsize="x-small")
    return fig


def verdict_grid(rows: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Claim-3 rows (verdicts.published_depth_trends) as a grid for display: one row per
    matrix (or output − input contrast) and time (last step, averaged over training), one
    column per model; each cell the proxy verdict (verdicts.PROXY_LABELS), the slope with the
    interval of its two nulls, p, power against the smallest effect of interest, and the
    verdict without the first / last block; across-model cells: sizes confirming and
    contradicting. Shaping only."""
    from ..verdicts import PROXY_LABELS

    def cell(x):
        label = PROXY_LABELS[x["verdict"]]
        label = f"**{label}**" if x["verdict"] != "undecided" else label
        if x["comparison"] == "count":
            return f"{label}: {x['detail'].split('; ', 1)[1]}"
        drop = " / ".join(PROXY_LABELS[x[k]].removeprefix("proxy ") for k in ("without_first", "without_last"))
        return (f"{label} {x['effect']:.{digits}g} [{x['low']:.{digits}g}, {x['high']:.{digits}g}], p {x['p']:.2g}, "
                f"power {x['power']:.0%}; without first / last block: {drop}")

    out = rows.assign(cell=rows.apply(cell, axis=1))
    grid = out.pivot_table(index=["role", "when"], columns="run", values="cell", aggfunc="first", sort=False)
    grid = grid[list(dict.fromkeys(rows["run"]))].reset_index()
    grid["role"] = grid["role"].map(lambda r: style.ROLE_LABELS.get(r, "output − input (paired by block)"))
    return grid.rename(columns={"role": "matrix", "when": "tail ratio"})


def ranges(values) -> str:
    """Integers as runs: [9, 10, 11, 14] -> "9–11, 14"."""
    v = sorted(int(x) for x in values)
    out, start = [], None
    for a, b in zip(v, v[1:] + [None]):
        start = a if start is None else start
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}–{a}")
            start = None
    return ", ".join(out)

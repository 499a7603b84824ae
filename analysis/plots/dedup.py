"""Raw vs deduplicated runs side by side."""

import numpy as np

from . import style
from .animation import cached_mp4
from .weight_distribution import ANIMATION_VERSION, draw_panel, fixed_limits


def norms_by_block(table, measure: str = "frobenius", ylabel: str = "Frobenius norm"):
    """One panel per role: a line per block (colour: block) through training, raw solid and
    deduplicated dashed, same axes. -> Figure"""
    sub = table[table["measure"] == measure]
    roles = list(dict.fromkeys(sub["role"]))
    blocks = sorted(sub["block"].unique())
    colors = dict(zip(blocks, style.sequential(len(blocks))))
    fig, axes = style.figure(1, len(roles), width=3.3 * len(roles), height=3.3, sharey=False)
    for ax, role in zip(axes[0], roles):
        for (run, block), g in sub[sub["role"] == role].groupby(["run", "block"], sort=False):
            g = g.sort_values("step")
            ax.plot(g["step"], g["value"], color=colors[block], linewidth=1.2,
                    label=f"block {block}" if run == sub["run"].iloc[0] else None, **style.RUN_STYLES.get(run, {}))
        style.step_axis(ax)
        ax.set_title(style.ROLE_LABELS[role])
        ax.set_xlabel("training step")
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize="xx-small", ncol=2, title="solid: raw, dashed: deduped", title_fontsize="xx-small")
    return fig


def qkv_side_by_side(records: list[dict], folder, bins: int, fps: float):
    """Animation of the QKV spectrum of each run in its own panel, axes shared by both runs
    and fixed over all frames. -> path"""
    rs = [r for r in records if r["role"] == "qkv"]
    runs = list(dict.fromkeys(r["run"] for r in rs))

    def frames():
        limits = fixed_limits(rs, bins)  # over both runs: shared axes
        for step in sorted({r["step"] for r in rs}):
            fig, axes = style.figure(1, len(runs), width=5.0 * len(runs), height=3.6)
            for i, (ax, run) in enumerate(zip(axes[0], runs)):
                rec = next(r for r in rs if r["run"] == run and r["step"] == step)
                draw_panel(ax, rec, limits["qkv"], legend=i == 0, title=f"{run}")
                ax.set_xlabel("singular value")
            fig.suptitle(f"attention QKV · block {rs[0]['block']} · step {step}")
            yield fig

    key = {"v": ANIMATION_VERSION, "keys": [r["key"] for r in rs], "bins": bins}
    return cached_mp4(folder, "qkv-runs", key, frames, fps)


def ordering_through_training(ordering):
    """Kendall τ between the runs' block orderings at each step, a line per role. -> Figure"""
    fig, axes = style.figure(1, 1, width=7.0, height=3.2)
    ax = axes[0, 0]
    for role, g in ordering.groupby("role", sort=False):
        g = g.sort_values("step")
        ax.plot(g["step"], g["kendall_tau"], marker="o", markersize=3, color=style.ROLE_COLORS[role],
                label=style.ROLE_LABELS[role])
    ax.axhline(0, color="0.5", linewidth=0.8)
    style.step_axis(ax)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("training step")
    ax.set_ylabel("Kendall τ of block orderings")
    ax.legend(fontsize="x-small")
    return fig


def activation_histograms(records: list[dict], steps: list[int]):
    """Rows: runs; columns: steps; a line per block (colour: block) of the standardised
    residual-stream histogram on held-out text, log density, same axes everywhere. -> Figure"""
    from ..activations import EDGES

    runs = list(dict.fromkeys(r["run"] for r in records))
    n_blocks = records[0]["hist"].shape[0]
    colors = style.sequential(n_blocks)
    centres = (EDGES[1:] + EDGES[:-1]) / 2
    fig, axes = style.figure(len(runs), len(steps), width=2.3 * len(steps), height=2.2 * len(runs) + 0.4,
                             sharex=True, sharey=True)
    for i, run in enumerate(runs):
        for j, step in enumerate(steps):
            ax = axes[i, j]
            rec = next(r for r in records if r["run"] == run and r["step"] == step)
            for b in range(n_blocks):
                ax.plot(centres, np.where(rec["hist"][b] > 0, rec["hist"][b], np.nan), color=colors[b], linewidth=1,
                        label=f"block {b}")
            ax.set_yscale("log")
            ax.set_ylim(1e-5, 1)
            if i == 0:
                ax.set_title(f"step {step}", fontsize="small")
            if i == len(runs) - 1:
                ax.set_xlabel("value / std")
        axes[i, 0].set_ylabel(f"{run}\ndensity")
    axes[0, -1].legend(fontsize="xx-small", ncol=2)
    return fig


def activation_kurtosis(records: list[dict]):
    """Excess kurtosis of each block's residual stream through training, both runs. -> Figure"""
    fig, axes = style.figure(1, 1, width=7.0, height=3.4)
    ax = axes[0, 0]
    n_blocks = records[0]["hist"].shape[0]
    colors = style.sequential(n_blocks)
    for run in dict.fromkeys(r["run"] for r in records):
        rs = sorted((r for r in records if r["run"] == run), key=lambda r: r["step"])
        steps = [r["step"] for r in rs]
        for b in range(n_blocks):
            ax.plot(steps, [r["kurtosis"][b] for r in rs], color=colors[b], linewidth=1.2,
                    label=f"block {b}" if run == records[0]["run"] else None, **style.RUN_STYLES.get(run, {}))
    style.step_axis(ax)
    ax.set_xlabel("training step")
    ax.set_ylabel("excess kurtosis of the residual stream")
    ax.legend(fontsize="xx-small", ncol=2, title="solid: raw, dashed: deduped", title_fontsize="xx-small")
    return fig

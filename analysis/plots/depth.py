"""Spectra and shape measures across the blocks of a model."""

import numpy as np

from .. import shape
from . import style
from .animation import cached_mp4

DEPTH_VERSION = 2  # bump when the drawing changes


def _normalised_limits(records, bins):
    top = max(max(shape.normalised(r["sv"]).max(), shape.normalised(r["gaussian"]).max()) for r in records)
    edges = np.linspace(0, 1.02 * top, bins + 1)
    ymax = max(np.histogram(shape.normalised(r[k]), edges, density=True)[0].max() for r in records for k in ("sv", "gaussian"))
    return edges, 1.05 * ymax


def block_grid(records: list[dict], run: str, step: int, bins: int, limits=None, title: str | None = None):
    """Roles (rows) × blocks (columns): histograms of σ / rms(σ) of the weights (filled) and
    of the Gaussian baseline (line), one run at one step; axes shared. -> Figure"""
    rs = [r for r in records if r["run"] == run and r["step"] == step]
    roles = list(dict.fromkeys(r["role"] for r in rs))
    blocks = sorted({r["block"] for r in rs})
    edges, ymax = limits or _normalised_limits(rs, bins)
    fig, axes = style.figure(len(roles), len(blocks), width=max(1.45 * len(blocks), 6.0), height=1.5 * len(roles) + 0.6,
                             sharex=True, sharey=True)
    for i, role in enumerate(roles):
        for j, block in enumerate(blocks):
            ax = axes[i, j]
            rec = next(r for r in rs if r["role"] == role and r["block"] == block)
            ax.hist(shape.normalised(rec["sv"]), edges, density=True, color=style.ROLE_COLORS[role], alpha=0.8)
            dens, _ = np.histogram(shape.normalised(rec["gaussian"]), edges, density=True)
            ax.stairs(dens, edges, **{k: v for k, v in style.BASELINES["gaussian"].items() if k != "label"})
            ax.set_ylim(0, ymax)
            ax.tick_params(labelsize="xx-small")
            if i == 0:
                ax.set_title(f"block {block}", fontsize="small")
        axes[i, 0].set_ylabel(style.ROLE_LABELS[role], fontsize="small")
    fig.suptitle(title or f"run {run} · step {step} · σ / rms(σ): weights (filled) vs Gaussian baseline (line)",
                 fontsize="medium")
    return fig


def block_animation(records: list[dict], run: str, folder, bins: int, fps: float):
    """block_grid through training, axes fixed over all frames. -> path"""
    rs = [r for r in records if r["run"] == run]

    def frames():
        limits = _normalised_limits(rs, bins)
        for step in sorted({r["step"] for r in rs}):
            yield block_grid(rs, run, step, bins, limits, title=f"run {run} · step {step} · σ / rms(σ) by block")

    key = {"v": DEPTH_VERSION, "keys": [r["key"] for r in rs], "bins": bins}
    return cached_mp4(folder, f"blocks-{run}", key, frames, fps)


def measures_by_block(table, measures: dict):
    """One panel per measure: value against block, a line per role and run. -> Figure"""
    fig, axes = style.figure(1, len(measures), width=3.4 * len(measures), height=3.2)
    for ax, (measure, label) in zip(axes[0], measures.items()):
        sub = table[table["measure"] == measure]
        for (role, run), g in sub.groupby(["role", "run"], sort=False):
            g = g.sort_values("block")
            ax.plot(g["block"], g["value"], marker="o", markersize=3, color=style.ROLE_COLORS[role],
                    label=f"{style.ROLE_LABELS[role]} ({run})", **style.RUN_STYLES.get(run, {}))
        ax.set_xlabel("block")
        ax.set_ylabel(label)
    axes[0, 0].legend(fontsize="xx-small", ncol=2)
    return fig

"""Singular-value histograms of the four roles against fitted baselines and Marchenko-Pastur."""

from pathlib import Path

import numpy as np

from ..spectra import mp_density
from . import style
from .animation import cached_mp4


def fixed_limits(records: list[dict], bins: int) -> dict:
    """Per role: bin edges and y-limit covering every frame (weights and baselines), so
    axes stay fixed through an animation."""
    limits = {}
    for role in dict.fromkeys(r["role"] for r in records):
        rs = [r for r in records if r["role"] == role]
        top = max(max(r["sv"].max(), r["gaussian"].max(), r["logistic"].max()) for r in rs)
        edges = np.linspace(0.0, 1.02 * top, bins + 1)
        ymax = max(np.histogram(r[k], edges, density=True)[0].max() for r in rs for k in ("sv", "gaussian", "logistic"))
        limits[role] = {"edges": edges, "ymax": 1.05 * ymax}
    return limits


def draw_panel(ax, rec: dict, lim: dict, legend: bool = False, title: str | None = None) -> None:
    edges = lim["edges"]
    ax.hist(rec["sv"], edges, density=True, color=style.ROLE_COLORS[rec["role"]], alpha=0.75, label="weights")
    for kind in ("gaussian", "logistic"):
        dens, _ = np.histogram(rec[kind], edges, density=True)
        ax.stairs(dens, edges, **style.BASELINES[kind])
    x = np.linspace(edges[0], edges[-1], 400)
    ax.plot(x, mp_density(x, rec["rows"], rec["cols"], rec["gaussian_scale"] ** 2), **style.BASELINES["mp"])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, lim["ymax"])
    ax.set_title(f"{style.ROLE_LABELS[rec['role']]}  {rec['rows']}×{rec['cols']}" if title is None else title)
    if legend:
        ax.legend(loc="upper right", fontsize="small")


def frame(records_at_step: list[dict], limits: dict, title: str):
    """One step: a 2×2 grid of roles. -> Figure"""
    fig, axes = style.figure(2, 2, width=10.0, height=7.0)
    for i, (ax, rec) in enumerate(zip(axes.flat, records_at_step)):
        draw_panel(ax, rec, limits[rec["role"]], legend=i == 0)
        ax.set_xlabel("singular value")
    for ax in axes.flat[len(records_at_step):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


ANIMATION_VERSION = 2  # bump when the frames' drawing changes


def animation(records: list[dict], run: str, folder, bins: int, fps: float) -> Path:
    """MP4 of one run through training, axes fixed across frames (reused when warm). -> path"""
    rs = [r for r in records if r["run"] == run]

    def frames():
        limits = fixed_limits(rs, bins)
        block = rs[0]["block"]
        for s in sorted({r["step"] for r in rs}):
            yield frame([r for r in rs if r["step"] == s], limits, f"run {run} · block {block} · step {s}")

    key = {"v": ANIMATION_VERSION, "keys": [r["key"] for r in rs], "bins": bins}
    return cached_mp4(folder, f"sv-{run}", key, frames, fps)


def grid(records: list[dict], run: str, steps: list[int], bins: int):
    """Roles (rows) × steps (columns) small multiples, axes fixed per role. -> Figure"""
    rs = [r for r in records if r["run"] == run]
    limits = fixed_limits(rs, bins)
    roles = list(dict.fromkeys(r["role"] for r in rs))
    fig, axes = style.figure(len(roles), len(steps), width=2.1 * len(steps), height=1.9 * len(roles))
    for i, role in enumerate(roles):
        for j, step in enumerate(steps):
            rec = next(r for r in rs if r["role"] == role and r["step"] == step)
            title = f"step {step}" if i == 0 else ""
            draw_panel(axes[i, j], rec, limits[role], title=title)
            axes[i, j].tick_params(labelsize="x-small")
            if i == 0 and j == len(steps) - 1:
                axes[i, j].legend(fontsize="xx-small", loc="upper right")
        axes[i, 0].set_ylabel(style.ROLE_LABELS[role], fontsize="small")
    return fig


def measure_through_training(table, measure: str, ylabel: str):
    """One line per role and run: a shape measure against step (symlog x). -> Figure"""
    fig, axes = style.figure(1, 1, width=7.0, height=3.8)
    ax = axes[0, 0]
    sub = table[table["measure"] == measure]
    for (role, run), g in sub.groupby(["role", "run"], sort=False):
        g = g.sort_values("step")
        ax.plot(g["step"], g["value"], color=style.ROLE_COLORS[role], marker="o", markersize=3,
                label=f"{style.ROLE_LABELS[role]} ({run})", **style.RUN_STYLES.get(run, {}))
    style.step_axis(ax)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="x-small", ncol=2)
    return fig

"""Singular-value histograms of the four roles against fitted baselines and Marchenko-Pastur,
and shape measures through training against the noise band of the baseline draws."""

from pathlib import Path

import numpy as np

from ..intervals import measure_band
from ..baselines import mp_density
from . import style
from .animation import cached_mp4, redrawn_frames

DRAW = 0  # histograms show one baseline draw per kind: the first of the K in each record


def fixed_limits(records: list[dict], bins: int) -> dict:
    """Per role: bin edges and y-limit covering every frame (weights and the drawn baselines),
    so axes stay fixed through an animation."""
    limits = {}
    for role in dict.fromkeys(r["role"] for r in records):
        rs = [r for r in records if r["role"] == role]
        top = max(max(r["sv"].max(), r["gaussian"][DRAW].max(), r["logistic"][DRAW].max()) for r in rs)
        edges = np.linspace(0.0, 1.02 * top, bins + 1)
        ymax = max(np.histogram(r["sv"] if k == "sv" else r[k][DRAW], edges, density=True)[0].max()
                   for r in rs for k in ("sv", "gaussian", "logistic"))
        limits[role] = {"edges": edges, "ymax": 1.05 * ymax}
    return limits


def draw_panel(ax, rec: dict, lim: dict, legend: bool = False, title: str | None = None) -> dict:
    """The weights' singular values (filled) against the first Gaussian and logistic draw
    (lines) and Marchenko-Pastur for the fitted variance. -> the panel's changing artists,
    for show_record"""
    edges = lim["edges"]
    _, _, bars = ax.hist(rec["sv"], edges, density=True, color=style.ROLE_COLORS[rec["role"]], alpha=0.75,
                         label="weights")
    artists = {"bars": bars}
    for kind in ("gaussian", "logistic"):
        line = style.BASELINES[kind]
        artists[kind] = ax.stairs(_density(rec[kind][DRAW], edges), edges,
                                  **{**line, "label": f"{line['label']} (draw {DRAW + 1} of {len(rec[kind])})"})
    x = np.linspace(edges[0], edges[-1], 400)
    artists["mp"], = ax.plot(x, _mp_line(x, rec), **style.BASELINES["mp"])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, lim["ymax"])
    ax.set_title(f"{style.ROLE_LABELS[rec['role']]}  {rec['rows']}×{rec['cols']}" if title is None else title)
    if legend:
        ax.legend(loc="upper right", fontsize="small")
    return artists


def _density(values, edges) -> np.ndarray:
    """Histogram density, as ax.hist(..., density=True) draws it."""
    return np.histogram(values, edges, density=True)[0]


def _mp_line(x, rec: dict) -> np.ndarray:
    return mp_density(x, rec["rows"], rec["cols"], rec["gaussian_scale"] ** 2)


def show_record(artists: dict, rec: dict, lim: dict) -> None:
    """Set a draw_panel panel's artists to another record of its role and shape (its title
    stays), limits kept: what an animation frame changes instead of drawing anew."""
    edges = lim["edges"]
    for bar, height in zip(artists["bars"], _density(rec["sv"], edges)):
        bar.set_height(height)
    for kind in ("gaussian", "logistic"):
        artists[kind].set_data(_density(rec[kind][DRAW], edges))
    artists["mp"].set_ydata(_mp_line(artists["mp"].get_xdata(), rec))


def frame(records_at_step: list[dict], limits: dict, title: str):
    """One step: a 2×2 grid of roles. -> Figure"""
    return _frame_panels(records_at_step, limits, title)[0]


def _frame_panels(records_at_step: list[dict], limits: dict, title: str):
    """frame's figure, its title artist and its panels' artists by role (draw_panel).
    -> (Figure, heading, panels)"""
    fig, axes = style.figure(2, 2, width=10.0, height=7.0)
    panels = {}
    for i, (ax, rec) in enumerate(zip(axes.flat, records_at_step)):
        panels[rec["role"]] = draw_panel(ax, rec, limits[rec["role"]], legend=i == 0)
        ax.set_xlabel("singular value")
    for ax in axes.flat[len(records_at_step):]:
        ax.set_visible(False)
    return fig, fig.suptitle(title), panels


ANIMATION_VERSION = 3  # bump when the frames' drawing changes


def animation(records: list[dict], run: str, role: str, folder, bins: int, fps: float) -> Path:
    """MP4 of one run (of declared `role`) through training, axes fixed across frames
    (reused when warm). -> path"""
    rs = [r for r in records if r["run"] == run]

    def frames():
        # One figure for every frame, laid out and drawn once (as depth.block_animation).
        limits = fixed_limits(rs, bins)
        block = rs[0]["block"]
        steps = sorted({r["step"] for r in rs})
        at = {s: [r for r in rs if r["step"] == s] for s in steps}
        title = f"run {run} ({role}) · block {block} · step {{}}"
        fig, heading, panels = _frame_panels(at[steps[0]], limits, title.format(steps[0]))

        def show(s):
            for rec in at[s]:
                show_record(panels[rec["role"]], rec, limits[rec["role"]])
            heading.set_text(title.format(s))  # fig.suptitle would undo the place the layout gave it

        changing = [heading, *(a for p in panels.values() for a in (*p["bars"], p["gaussian"], p["logistic"], p["mp"]))]
        return redrawn_frames(fig, changing, show, steps)

    key = {"v": ANIMATION_VERSION, "keys": [r["key"] for r in rs], "bins": bins, "draw": DRAW, "role": role}
    return cached_mp4(folder, f"sv-{run}", key, frames, fps)


def grid(records: list[dict], run: str, steps: list[int], bins: int):
    """Roles (rows) × steps (columns) small multiples, axes fixed per role. -> Figure"""
    rs = [r for r in records if r["run"] == run]
    limits = fixed_limits(rs, bins)
    roles = list(dict.fromkeys(r["role"] for r in rs))
    fig, axes = style.figure(len(roles), len(steps), width=2.1 * len(steps) + 0.4, height=1.9 * len(roles))
    for i, role in enumerate(roles):
        for j, step in enumerate(steps):
            rec = next(r for r in rs if r["role"] == role and r["step"] == step)
            draw_panel(axes[i, j], rec, limits[role], title=f"step {step}" if i == 0 else "")
            axes[i, j].tick_params(labelsize="x-small")
        axes[i, 0].set_ylabel(style.ROLE_LABELS[role], fontsize="small")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="x-small")
    return fig


def band_through_training(measures, draws, measure: str, kind: str, runs: dict, block: int, level: float):
    """Per (run, role, step): the weights' value of `measure` and the `level` prediction band
    of the same measure over the `kind` draws (where one more draw falls: the noise band the
    verdicts use). runs: {run: declared role}. -> DataFrame (run, role, step, value, low, high)"""
    import pandas as pd

    m = measures[(measures.measure == measure) & (measures.block == block) & measures.run.isin(runs)]
    d = draws[(draws.measure == measure) & (draws.kind == kind) & (draws.block == block) & draws.run.isin(runs)]
    bands = {k: measure_band(g["value"], measure, level) for k, g in d.groupby(["run", "role", "step"], sort=False)}
    rows = [{"run": x.run, "role": x.role, "step": x.step, "value": x.value,
             "low": bands[(x.run, x.role, x.step)][0], "high": bands[(x.run, x.role, x.step)][1]}
            for x in m.itertuples()]
    return pd.DataFrame(rows).sort_values(["run", "role", "step"])


def measure_through_training(measures, draws, measure: str, ylabel: str, runs: dict, block: int, level: float,
                             kind: str = "gaussian"):
    """One panel per role: the weights' `measure` against step, a line per run styled by its
    declared role, over the shaded `level` prediction band of the same measure over the
    `kind` draws (one band per run, shaded in the role's colour). runs: {run: role}. -> Figure"""
    t = band_through_training(measures, draws, measure, kind, runs, block, level)
    roles = list(dict.fromkeys(measures[measures.block == block]["role"]))
    cols = min(len(roles), 2)
    nrows = -(-len(roles) // cols)
    fig, axes = style.figure(nrows, cols, width=9.0, height=2.6 * nrows + 0.7, sharex=True)
    for ax, role in zip(axes.flat, roles):
        for run, run_role in runs.items():
            g = t[(t.run == run) & (t.role == role)]
            ax.fill_between(g["step"], g["low"], g["high"], color=style.ROLE_COLORS[role], alpha=style.BAND_ALPHA,
                            linewidth=0)
            ax.plot(g["step"], g["value"], color=style.ROLE_COLORS[role], marker="o", markersize=3,
                    label=f"{run} ({run_role})", **style.run_style(run_role))
        style.step_axis(ax)
        ax.set_title(style.ROLE_LABELS[role])
        ax.set_ylabel(ylabel)
    for ax in axes.flat[len(roles):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="0.2", label=f"{run} ({role})", **style.run_style(role)) for run, role in runs.items()]
    handles.append(Patch(color="0.2", alpha=style.BAND_ALPHA, label=f"{kind} draws, {level:.0%} band"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small")
    return fig

"""Spectra and shape measures across the blocks of a model, and claim 3's resolution."""

import numpy as np
import pandas as pd

from .. import intervals, measures
from . import style
from .animation import cached_mp4, redrawn_frames

DEPTH_VERSION = 4  # bump when the drawing changes

# Measures of the by-block figure: (label, baseline kind whose draws give the noise band).
BLOCK_MEASURES = {"w1_gaussian": ("W1 of σ/rms to Gaussian draws", "gaussian"),
                  "tail": ("σmax / rms(σ)", "gaussian"),
                  "alpha": ("power-law α of σ² (smaller: heavier)", "gaussian"),
                  "near_zero": ("near-zero fraction", "gaussian")}


def _gaussian_line(rec: dict) -> np.ndarray:
    """The first Gaussian draw of a record ("gaussian" holds K draws, (K, k))."""
    return np.asarray(rec["gaussian"]).reshape(-1, len(rec["sv"]))[0]


def _normalised_limits(records, bins):
    top = max(max(measures.normalised(r["sv"]).max(), measures.normalised(_gaussian_line(r)).max()) for r in records)
    edges = np.linspace(0, 1.02 * top, bins + 1)
    ymax = max(np.histogram(measures.normalised(x), edges, density=True)[0].max()
               for r in records for x in (r["sv"], _gaussian_line(r)))
    return edges, 1.05 * ymax


MAX_GRID_BLOCKS = 12  # rows of a block grid; more blocks are shown evenly spread (the title says so)


def shown_blocks(blocks, most: int = MAX_GRID_BLOCKS) -> list:
    """All blocks, or `most` of them evenly spread (first and last included)."""
    blocks = sorted(blocks)
    if len(blocks) <= most:
        return blocks
    return [blocks[int(i)] for i in np.unique(np.linspace(0, len(blocks) - 1, most).round())]


def block_grid(records: list[dict], bins: int, limits=None, title: str | None = None):
    """Blocks (rows) × roles (columns): histograms of σ / rms(σ) of the weights (filled) and
    of the first Gaussian draw (line), records of one run at one step; axes shared. With
    more than MAX_GRID_BLOCKS blocks, that many evenly spread ones. -> Figure"""
    return _grid_panels(records, bins, limits, title)[0]


def _grid_title(records: list[dict], title: str | None) -> str | None:
    """The title, naming the shown blocks when they are a selection."""
    every = {r["block"] for r in records}
    shown = shown_blocks(every)
    if len(shown) < len(every):
        return f"{title or ''} ({len(shown)} of {len(every)} blocks)".strip()
    return title


def _grid_panels(records: list[dict], bins: int, limits=None, title: str | None = None):
    """block_grid's figure, its title artist (None without a title) and its changing
    artists, {(block, role): (bars, Gaussian line)}, which _show_step sets to another
    step's records. -> (Figure, heading, panels)"""
    roles = list(dict.fromkeys(r["role"] for r in records))
    blocks = shown_blocks({r["block"] for r in records})
    title = _grid_title(records, title)
    edges, ymax = limits or _normalised_limits(records, bins)
    fig, axes = style.figure(len(blocks), len(roles), width=min(10.0, 2.4 * len(roles)),
                             height=0.95 * len(blocks) + 0.9, sharex=True, sharey=True)
    line = {k: v for k, v in style.BASELINES["gaussian"].items() if k != "label"}
    panels = {}
    for i, block in enumerate(blocks):
        for j, role in enumerate(roles):
            ax = axes[i, j]
            rec = _record(records, block, role)
            _, _, bars = ax.hist(measures.normalised(rec["sv"]), edges, density=True, color=style.ROLE_COLORS[role],
                                 alpha=0.8)
            stairs = ax.stairs(_density(_gaussian_line(rec), edges), edges, **line)
            ax.set_ylim(0, ymax)
            panels[block, role] = bars, stairs
    _label_grid(axes, blocks, roles)
    heading = fig.suptitle(title, fontsize="medium") if title else None
    return fig, heading, panels


def _record(records: list[dict], block, role) -> dict:
    return next(r for r in records if r["role"] == role and r["block"] == block)


def _density(sv, edges) -> np.ndarray:
    """Histogram density of σ / rms(σ), as ax.hist(..., density=True) draws it."""
    return np.histogram(measures.normalised(sv), edges, density=True)[0]


def _show_step(panels: dict, records: list[dict], edges, heading, title: str) -> None:
    """Set a _grid_panels figure to the records of another step of the same run (same
    blocks, roles and limits): the bars' heights, the Gaussian lines and the title's text
    (set on the title itself: fig.suptitle would undo the place the layout gave it)."""
    for (block, role), (bars, stairs) in panels.items():
        rec = _record(records, block, role)
        for bar, height in zip(bars, _density(rec["sv"], edges)):
            bar.set_height(height)
        stairs.set_data(_density(_gaussian_line(rec), edges))
    heading.set_text(_grid_title(records, title))


def _label_grid(axes, blocks, roles) -> None:
    """Roles over the columns, blocks down the rows, σ / rms(σ) under the bottom row."""
    for i, block in enumerate(blocks):
        for j, role in enumerate(roles):
            axes[i, j].tick_params(labelsize="xx-small")
            if i == 0:
                axes[i, j].set_title(style.ROLE_LABELS[role], fontsize="small")
            if i == len(blocks) - 1:
                axes[i, j].set_xlabel("σ / rms(σ)", fontsize="x-small")
        axes[i, 0].set_ylabel(f"block {block}", fontsize="small")


def block_grid_runs(records: list[dict], names: dict, bins: int, title: str | None = None):
    """Blocks (rows) × roles (columns) of several runs, each at its own step, in one figure:
    the reference's σ / rms(σ) histogram filled, every other run's as a line in its role's
    style (one figure, so the PDF has one caption however many runs there are). records:
    one step per run; names: {run: role}. -> Figure"""
    roles = list(dict.fromkeys(r["role"] for r in records))
    blocks = shown_blocks({r["block"] for r in records})
    edges, ymax = _normalised_limits(records, bins)
    fig, axes = style.figure(len(blocks), len(roles), width=min(10.0, 2.4 * len(roles)),
                             height=0.95 * len(blocks) + 1.2, sharex=True, sharey=True)
    for i, block in enumerate(blocks):
        for j, role in enumerate(roles):
            ax = axes[i, j]
            for run, run_role in names.items():
                rec = next((r for r in records if r["run"] == run and r["role"] == role and r["block"] == block), None)
                if rec is None:
                    continue
                dens, _ = np.histogram(measures.normalised(rec["sv"]), edges, density=True)
                if run_role == "reference":
                    ax.stairs(dens, edges, fill=True, color=style.ROLE_COLORS[role], alpha=0.45)
                else:
                    ax.stairs(dens, edges, color="0.15", linewidth=1.0, **style.run_style(run_role))
            ax.set_ylim(0, ymax)
    _label_grid(axes, blocks, roles)
    others = {run: role for run, role in names.items() if role != "reference"}
    if others:  # a build of the reference alone (the olmo profile) has no line to name
        fig.legend(*style.run_handles(others, color="0.15"), loc="outside lower center",
                   ncol=style.legend_columns(len(others)), fontsize="small", title="filled: the reference",
                   title_fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig


def block_animation(records: list[dict], run: str, role: str, folder, bins: int, fps: float):
    """block_grid of one run through training, axes fixed over all frames. -> path"""
    rs = [r for r in records if r["run"] == run]

    def frames():
        # One figure for every frame, laid out and drawn once: a frame only sets the bars,
        # the Gaussian lines and the title's step, and redraws those (redrawn_frames).
        limits = _normalised_limits(rs, bins)
        steps = sorted({r["step"] for r in rs})
        at = {step: [r for r in rs if r["step"] == step] for step in steps}
        title = f"{style.run_label(run, role)} · step {{}} · weights (filled) vs Gaussian draw (line)"
        fig, heading, panels = _grid_panels(at[steps[0]], bins, limits, title.format(steps[0]))
        changing = [heading, *(a for bars, line in panels.values() for a in (*bars, line))]
        return redrawn_frames(fig, changing, lambda step: _show_step(panels, at[step], limits[0], heading,
                                                                     title.format(step)), steps)

    key = {"v": DEPTH_VERSION, "keys": [r["key"] for r in rs], "bins": bins, "role": role}
    return cached_mp4(folder, f"blocks-{run}", key, frames, fps)


def draw_bands(draws: pd.DataFrame, level: float, kinds: dict) -> pd.DataFrame:
    """Prediction band (analysis.intervals.prediction_band at `level`) of each measure over
    its kind's draws, per (run, step, block, role), as the verdicts have it: α's on the log
    scale, near-zero's clipped to [0, 1]. kinds: {measure: kind}.
    -> (run, step, block, role, measure, low, high)"""
    rows = []
    for measure, kind in kinds.items():
        sub = draws[(draws["measure"] == measure) & (draws["kind"] == kind)]
        for (run, step, block, role), g in sub.groupby(["run", "step", "block", "role"], sort=False):
            lo, hi = intervals.measure_band(g["value"], measure, level)
            rows.append((run, step, block, role, measure, lo, hi))
    return pd.DataFrame(rows, columns=["run", "step", "block", "role", "measure", "low", "high"])


def _last_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Each run's rows at its own last step."""
    return table[table["step"] == table.groupby("run")["step"].transform("max")]


def measures_by_block(table: pd.DataFrame, draws: pd.DataFrame, names: dict, level: float,
                      shown: dict = BLOCK_MEASURES):
    """Measures (rows) × roles (columns) against block at each run's last step: the weights'
    value (line, styled by run role) and the `level` prediction band of the same measure
    over the baseline draws (shaded, one per run). -> Figure"""
    last, last_draws = _last_rows(table), _last_rows(draws[draws["measure"].isin(list(shown))])
    bands = draw_bands(last_draws, level, {m: kind for m, (_, kind) in shown.items()})
    roles = list(dict.fromkeys(last["role"]))
    blocks = sorted(last["block"].unique())
    fig, axes = style.figure(len(shown), len(roles), width=min(10.0, 2.5 * len(roles)), height=1.9 * len(shown) + 0.7,
                             sharex=True)
    for i, (measure, (label, kind)) in enumerate(shown.items()):
        for j, role in enumerate(roles):
            ax = axes[i, j]
            color = style.ROLE_COLORS[role]
            for run, run_role in names.items():
                b = bands[(bands["run"] == run) & (bands["role"] == role) & (bands["measure"] == measure)].sort_values("block")
                ax.fill_between(b["block"], b["low"], b["high"], color=color, alpha=style.BAND_ALPHA / 2, linewidth=0)
                g = last[(last["run"] == run) & (last["role"] == role) & (last["measure"] == measure)].sort_values("block")
                ax.plot(g["block"], g["value"], marker="o", markersize=3, color=color, **style.run_style(run_role))
            ax.tick_params(labelsize="x-small")
            if i == 0:
                ax.set_title(style.ROLE_LABELS[role], fontsize="small")
            if i == len(shown) - 1:
                ax.set_xlabel("block", fontsize="small")
                ax.set_xticks(blocks)
        axes[i, 0].set_ylabel(label, fontsize="x-small")
    fig.legend(*style.run_handles(names), loc="outside lower center", ncol=style.legend_columns(len(names)), fontsize="small",
               title=f"shaded: {level:.0%} prediction band of the Gaussian draws, one per run", title_fontsize="small")
    return fig


def resolution_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Claim 3's verdict rows as what each test can resolve: per row the role, the measure,
    the number of blocks N, the smallest slope detected with 80% power per block, and the
    same across the depth (× (N − 1)), next to the measured slope and its interval."""
    out = rows[["role", "measure", "blocks", "resolution", "effect", "low", "high", "verdict"]].copy()
    out["blocks"] = out["blocks"].astype(int)
    out["across depth"] = out["resolution"] * (out["blocks"] - 1)
    return out.reset_index(drop=True)

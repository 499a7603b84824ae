"""Treatment (e.g. deduplicated data), reference and replica runs side by side."""

import numpy as np
import pandas as pd

from .. import dynamics
from ..activations import EDGES
from . import style
from .animation import cached_mp4

DEDUP_VERSION = 4  # bump when the drawing changes


def _first(draws, k: int) -> np.ndarray:
    """First of a record's K baseline draws ((K, k) arrays)."""
    return np.asarray(draws).reshape(-1, k)[0]


def _qkv_limits(records: list[dict], bins: int) -> dict:
    """Bin edges and y-limit covering every record (weights and the first draws), so the
    panels share axes across runs and through an animation."""
    top = max(max(r["sv"].max(), _first(r["gaussian"], len(r["sv"])).max(), _first(r["logistic"], len(r["sv"])).max())
              for r in records)
    edges = np.linspace(0.0, 1.02 * top, bins + 1)
    ymax = max(np.histogram(x, edges, density=True)[0].max() for r in records
               for x in (r["sv"], _first(r["gaussian"], len(r["sv"])), _first(r["logistic"], len(r["sv"]))))
    return {"edges": edges, "ymax": 1.05 * ymax}


def _qkv_panel(ax, rec: dict, lim: dict, title: str) -> None:
    edges, k = lim["edges"], len(rec["sv"])
    ax.hist(rec["sv"], edges, density=True, color=style.ROLE_COLORS[rec["role"]], alpha=0.75, label="weights")
    for kind in ("gaussian", "logistic"):
        dens, _ = np.histogram(_first(rec[kind], k), edges, density=True)
        ax.stairs(dens, edges, **style.BASELINES[kind])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, lim["ymax"])
    ax.set_title(title, fontsize="small")


def _qkv_legend(fig, axes) -> None:
    """One legend for all panels, below them: never over a histogram."""
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="small")


def qkv_side_by_side(records: list[dict], names: dict, folder, bins: int, fps: float):
    """Animation of the QKV spectrum of every run (a panel each, titled by its role), axes
    shared by all runs and fixed over all frames. -> path"""
    rs = [r for r in records if r["role"] == "qkv" and r["run"] in names]
    runs = [n for n in names if any(r["run"] == n for r in rs)]

    def frames():
        lim = _qkv_limits(rs, bins)
        for step in sorted({r["step"] for r in rs}):
            fig, axes = style.figure(1, len(runs), width=min(10.0, 3.3 * len(runs)), height=3.5, sharey=True)
            for ax, run in zip(axes[0], runs):
                rec = next((r for r in rs if r["run"] == run and r["step"] == step), None)
                if rec is None:
                    ax.set_visible(False)
                    continue
                _qkv_panel(ax, rec, lim, style.run_label(run, names[run]))
                ax.set_xlabel("singular value")
            axes[0, 0].set_ylabel("density")
            _qkv_legend(fig, axes)
            fig.suptitle(f"attention QKV · block {rs[0]['block']} · step {step}", fontsize="medium")
            yield fig

    key = {"v": DEDUP_VERSION, "keys": [r["key"] for r in rs], "bins": bins, "names": names}
    return cached_mp4(folder, "qkv-runs", key, frames, fps)


def qkv_grid(records: list[dict], names: dict, steps: list[int], bins: int):
    """Runs (rows, labelled by role) × steps (columns): the QKV spectrum with the first
    Gaussian and logistic draws, axes shared everywhere (the static version of
    qkv_side_by_side). -> Figure"""
    rs = [r for r in records if r["role"] == "qkv" and r["run"] in names and r["step"] in steps]
    runs = [n for n in names if any(r["run"] == n for r in rs)]
    lim = _qkv_limits(rs, bins)
    fig, axes = style.figure(len(runs), len(steps), width=min(10.0, 2.2 * len(steps)), height=1.8 * len(runs) + 0.6,
                             sharex=True, sharey=True)
    for i, run in enumerate(runs):
        for j, step in enumerate(steps):
            rec = next(r for r in rs if r["run"] == run and r["step"] == step)
            _qkv_panel(axes[i, j], rec, lim, f"step {step}" if i == 0 else "")
            axes[i, j].tick_params(labelsize="x-small")
        axes[i, 0].set_ylabel(style.run_label(run, names[run], "\n"), fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("singular value", fontsize="small")
    _qkv_legend(fig, axes)
    return fig


def _roles(table: pd.DataFrame) -> list[str]:
    """The table's matrix roles in the report's order (style.ROLE_LABELS)."""
    present = set(table["role"])
    return [r for r in style.ROLE_LABELS if r in present] + sorted(present - set(style.ROLE_LABELS))


def _role_axes(roles, ncols: int = 2, height_per_row: float = 2.5, **kw):
    nrows = -(-len(roles) // ncols)
    fig, axes = style.figure(nrows, ncols, width=9.5, height=height_per_row * nrows + 0.8, **kw)
    for ax in axes.flat[len(roles):]:
        ax.set_visible(False)
    return fig, axes


def _block_colorbar(fig, axes, blocks: list, colors: dict):
    """A discrete colour bar for the blocks' colours (scales to many blocks, unlike a legend)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap([colors[b] for b in blocks])
    norm = BoundaryNorm(np.arange(len(blocks) + 1) - 0.5, len(blocks))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, location="right", shrink=0.8, aspect=30,
                       pad=0.01, ticks=range(len(blocks)))
    bar.ax.set_yticklabels([str(b) for b in blocks], fontsize="x-small")
    bar.set_label("block", fontsize="small")


def norms_by_block(measures: pd.DataFrame, names: dict, measure: str = "frobenius", ylabel: str = "Frobenius norm"):
    """One panel per role: a line per block (colour: block) through training for every run
    (line style: the run's role), same axes per panel. -> Figure"""
    sub = measures[(measures["measure"] == measure) & measures["run"].isin(list(names))]
    roles = _roles(sub)
    blocks = sorted(sub["block"].unique())
    colors = dict(zip(blocks, style.sequential(len(blocks))))
    fig, axes = _role_axes(roles, sharex=True)
    for ax, role in zip(axes.flat, roles):
        for run, run_role in names.items():
            for block in blocks:
                g = sub[(sub["role"] == role) & (sub["run"] == run) & (sub["block"] == block)].sort_values("step")
                ax.plot(g["step"], g["value"], color=colors[block], linewidth=1.2, **style.run_style(run_role))
        style.step_axis(ax)
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    _block_colorbar(fig, axes, blocks, colors)
    fig.legend(*style.run_handles(names), loc="outside lower center", ncol=style.legend_columns(len(names)), fontsize="small")
    return fig


def weight_distance(distances: pd.DataFrame, names: dict, diverged_step: int, share: float):
    """Left: ‖W − W_ref‖/‖W_ref‖ of each non-reference run through training, per matrix role
    (colour) and run (line style). Right: the treatment's distance averaged over the
    matrices, `share` of its final value (dotted) and the first step reaching it (vertical
    line: the runs count as diverged from there). -> Figure"""
    from matplotlib.lines import Line2D

    sub = distances[distances["measure"] == "weight_distance"]
    mean = dynamics.mean_over_matrices(distances, "weight_distance")
    treatment = next(n for n, r in names.items() if r == "treatment")
    others = {n: r for n, r in names.items() if r != "reference"}
    roles = _roles(sub)
    fig, axes = style.figure(1, 2, width=9.5, height=3.4)
    left, right = axes[0]
    for run, run_role in others.items():
        for role in roles:
            g = sub[(sub["run"] == run) & (sub["role"] == role)].sort_values("step")
            left.plot(g["step"], g["value"], color=style.ROLE_COLORS[role], linewidth=1.2, **style.run_style(run_role))
    g = mean[mean["run"] == treatment]
    right.plot(g["step"], g["value"], color="0.2", marker="o", markersize=3, **style.run_style("treatment"))
    final = float(g["value"].iloc[-1])
    right.axhline(share * final, color="0.5", linestyle=":", linewidth=1)
    right.annotate(f"{share:.0%} of its final distance", (0, share * final), xytext=(4, 3),
                   xycoords=("axes fraction", "data"), textcoords="offset points", fontsize="x-small", color="0.3")
    for ax in (left, right):
        ax.axvline(diverged_step, color="0.3", linewidth=1)
        style.step_axis(ax)
        ax.set_xlabel("training step")
        ax.set_ylim(bottom=0)
    right.annotate(f"compared from step {diverged_step}", (diverged_step, 0.95), xytext=(-4, 0), textcoords="offset points",
                   ha="right", va="top", fontsize="x-small", color="0.3", xycoords=("data", "axes fraction"))
    left.set_ylabel("‖W − W_ref‖ / ‖W_ref‖")
    left.set_title("per matrix, every non-reference run", fontsize="small")
    right.set_title(f"{style.run_label(treatment, names[treatment])}, mean over matrices", fontsize="small")
    handles, labels = style.run_handles(others)
    handles += [Line2D([], [], color=style.ROLE_COLORS[r]) for r in roles]
    labels += [style.ROLE_LABELS[r] for r in roles]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize="x-small")
    return fig


def spectrum_distance(distances: pd.DataFrame, names: dict, diverged_step: int):
    """W1 of each non-reference run's σ/rms to the reference's spectrum through training,
    one panel per role: mean over blocks (line, style: run role) with the smallest and
    largest block (shaded); the diverged step marked. -> Figure"""
    over = dynamics.over_blocks(distances, "w1_spectrum")
    roles = _roles(over)
    others = {n: r for n, r in names.items() if r != "reference"}
    fig, axes = _role_axes(roles, sharex=True, sharey=True)
    for ax, role in zip(axes.flat, roles):
        color = style.ROLE_COLORS[role]
        for run, run_role in others.items():
            g = over[(over["run"] == run) & (over["role"] == role)].sort_values("step")
            ax.plot(g["step"], g["mean"], color=color, marker="o", markersize=3, **style.run_style(run_role))
            ax.fill_between(g["step"], g["low"], g["high"], color=color, alpha=style.BAND_ALPHA / 2, linewidth=0)
        ax.axvline(diverged_step, color="0.3", linewidth=1)
        style.step_axis(ax)
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("W1 of σ/rms to reference")
    fig.legend(*style.run_handles(others), loc="outside lower center", ncol=style.legend_columns(len(others)), fontsize="small",
               title="line: mean over blocks, shaded: smallest to largest block; vertical: first compared step",
               title_fontsize="x-small")
    return fig


def ordering_through_training(ordering: pd.DataFrame, names: dict, diverged_step: int):
    """Kendall τ between each run's and the reference's ordering of blocks by norm at each
    step, one panel per role, runs styled by role. -> Figure"""
    roles = _roles(ordering)
    others = {n: r for n, r in names.items() if r != "reference"}
    fig, axes = _role_axes(roles, height_per_row=2.2, sharex=True, sharey=True)
    for ax, role in zip(axes.flat, roles):
        for run, run_role in others.items():
            g = ordering[(ordering["run"] == run) & (ordering["role"] == role)].sort_values("step")
            ax.plot(g["step"], g["kendall_tau"], marker="o", markersize=3, color=style.ROLE_COLORS[role],
                    **style.run_style(run_role))
        ax.axvline(diverged_step, color="0.3", linewidth=1)
        ax.axhline(0, color="0.5", linewidth=0.8)
        style.step_axis(ax)
        ax.set_ylim(-1.1, 1.1)
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("Kendall τ vs reference")
    fig.legend(*style.run_handles(others), loc="outside lower center", ncol=style.legend_columns(len(others)), fontsize="small")
    return fig


def activation_histograms(records: list[dict], names: dict, steps: list[int]):
    """Runs (rows, labelled by role) × steps (columns): a line per block (colour: block) of
    the standardised residual-stream histogram on held-out text, log density, same axes
    everywhere. -> Figure"""
    runs = [n for n in names if any(r["run"] == n for r in records)]
    n_blocks = records[0]["hist"].shape[0]
    colors = style.sequential(n_blocks)
    centres = (EDGES[1:] + EDGES[:-1]) / 2
    fig, axes = style.figure(len(runs), len(steps), width=min(10.0, 2.2 * len(steps)), height=1.9 * len(runs) + 0.9,
                             sharex=True, sharey=True)
    for i, run in enumerate(runs):
        for j, step in enumerate(steps):
            ax = axes[i, j]
            rec = next(r for r in records if r["run"] == run and r["step"] == step)
            for b in range(n_blocks):
                ax.plot(centres, np.where(rec["hist"][b] > 0, rec["hist"][b], np.nan), color=colors[b], linewidth=1)
            ax.set_yscale("log")
            ax.set_ylim(1e-5, 1)
            ax.tick_params(labelsize="x-small")
            if i == 0:
                ax.set_title(f"step {step}", fontsize="small")
            if i == len(runs) - 1:
                ax.set_xlabel("value / std", fontsize="small")
        axes[i, 0].set_ylabel(style.run_label(run, names[run], "\n"), fontsize="small")
    _block_colorbar(fig, axes, list(range(n_blocks)), dict(enumerate(colors)))
    return fig


def activation_kurtosis(records: list[dict], names: dict):
    """Excess kurtosis of each block's residual stream through training (colour: block),
    every run (line style: its role). -> Figure"""
    table = dynamics.activation_kurtosis(records)
    blocks = sorted(table["block"].unique())
    colors = dict(zip(blocks, style.sequential(len(blocks))))
    fig, axes = style.figure(1, 1, width=7.5, height=3.6)
    ax = axes[0, 0]
    for run, run_role in names.items():
        for block in blocks:
            g = table[(table["run"] == run) & (table["block"] == block)].sort_values("step")
            ax.plot(g["step"], g["kurtosis"], color=colors[block], linewidth=1.2, **style.run_style(run_role))
    style.step_axis(ax)
    ax.set_xlabel("training step")
    ax.set_ylabel("excess kurtosis of the residual stream")
    _block_colorbar(fig, axes, blocks, colors)
    fig.legend(*style.run_handles(names), loc="outside lower center", ncol=style.legend_columns(len(names)), fontsize="small")
    return fig


def runs_frame(run_info: pd.DataFrame) -> pd.DataFrame:
    """The runs with what the comparison rests on: role, data, seed, documents, tokens,
    checkpoints and last step (only the columns the suite reports)."""
    cols = [c for c in ("run", "role", "data", "seed", "documents", "tokens", "checkpoints", "last step")
            if c in run_info.columns]
    return run_info[cols].reset_index(drop=True)


def weight_distances_at(distances: pd.DataFrame, end: str = "first") -> pd.DataFrame:
    """Per non-reference run: the mean weight distance to the reference over the configured
    block's matrices at its first or last analysed step (0: the same weights).
    -> (run, step, value), indexed by run"""
    mean = dynamics.mean_over_matrices(distances, "weight_distance")
    pick = mean.groupby("run")["step"].transform("min" if end == "first" else "max")
    return mean[mean["step"] == pick].set_index("run")


def activation_steps(records: list[dict], n: int) -> list[int]:
    """n steps spread evenly over those at which every run has activation records."""
    runs = {r["run"] for r in records}
    common = sorted(s for s in {r["step"] for r in records}
                    if all(any(x["run"] == run and x["step"] == s for x in records) for run in runs))
    return [common[int(i)] for i in np.unique(np.linspace(0, len(common) - 1, n).round())]


def verdict_agreement(verdicts: pd.DataFrame, reference: str, others: list[str]) -> pd.DataFrame:
    """Rows judged per run (claims 1 and 2): for each (claim, part, role), the reference's
    verdict next to each other run's, and whether they agree.
    -> (claim, part, role, run, reference, other, same)"""
    ref = verdicts[verdicts["run"] == reference].set_index(["claim", "part", "role"])["verdict"]
    rows = []
    for run in others:
        v = verdicts[verdicts["run"] == run].set_index(["claim", "part", "role"])["verdict"]
        for key in ref.index.intersection(v.index):
            rows.append((*key, run, ref[key], v[key], ref[key] == v[key]))
    return pd.DataFrame(rows, columns=["claim", "part", "role", "run", "reference", "other", "same"])


def than_replica(low: float, high: float, margin: float) -> str:
    """How a treatment ÷ replica ratio's interval reads in words, for the equivalence test
    with margin `margin` (analysis.verdicts: alike when the whole interval is at or below
    1 + margin): 'less than' (all below 1), 'about as much as' (contains 1, within the
    margin), 'slightly more than' (above 1, within the margin), 'more than (1 + margin)
    times what' (all beyond the margin) or, where the interval straddles 1 + margin
    (undecided), 'more than, possibly over (1 + margin) times, what' (all above 1) or
    'anywhere from less than to more than (1 + margin) times what'."""
    limit = 1 + margin
    if low > limit:
        return f"more than {limit:g} times what"
    if high > limit:
        return (f"more than, possibly over {limit:g} times, what" if low > 1 else
                f"anywhere from less than to more than {limit:g} times what")
    return "less than" if high < 1 else "slightly more than" if low > 1 else "about as much as"

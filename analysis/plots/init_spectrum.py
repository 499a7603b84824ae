"""Initialising from the learned spectrum: loss curves by init with seed bands, and the
spectra's distance to Gaussian through those runs."""

import numpy as np
import pandas as pd

from . import style


def loss_curves(curves: pd.DataFrame, target: float | None = None):
    """Held-out and training loss through training, one line per init kind (mean over
    seeds) with a band from the lowest to the highest seed. curves: (kind, seed, split,
    step, loss); target: the standard init's final held-out loss, drawn on the held-out
    panel. -> Figure"""
    fig, axes = style.figure(1, 2, width=10.0, height=4.4, sharey=True)
    for ax, split, title in zip(axes.flat, ("heldout", "train"), ("held-out text", "training batches")):
        g = curves[curves["split"] == split]
        for kind, h in g.groupby("kind", sort=False):
            by = h.pivot_table(index="step", columns="seed", values="loss").sort_index()
            kw = style.init_style(kind)
            ax.plot(by.index, by.mean(axis=1), label=kind, linewidth=1.4, **kw)
            ax.fill_between(by.index, by.min(axis=1), by.max(axis=1), color=kw["color"], alpha=style.BAND_ALPHA,
                            linewidth=0)
        if split == "heldout" and target is not None:
            ax.axhline(target, color="0.5", linewidth=0.8, linestyle=":")
        ax.set_xlim(0, curves["step"].max())  # linear: the verdict averages over evenly spaced steps
        ax.set_title(f"loss on {title}")
        ax.set_xlabel("training step")
    axes[0, 0].set_ylabel("cross-entropy (nats per token)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize="small")
    return fig


def shape_through_training(measures: pd.DataFrame, draws: pd.DataFrame, level: float):
    """Per matrix role, the W1 distance of the spectrum (σ/rms) to the Gaussian draws minus
    the draws' own mean distance (0: as Gaussian as a Gaussian matrix), per init kind (mean
    over seeds, band over seeds), with the Gaussian draws' prediction band (grey, widest
    over kinds and seeds at each step). -> Figure"""
    from ..intervals import prediction_band

    m = measures[measures["measure"] == "w1_gaussian"]
    d = draws[(draws["draw_kind"] == "gaussian") & (draws["measure"] == "w1_gaussian")]
    centre = d.groupby(["kind", "seed", "step", "role"])["value"].mean()
    bands = d.groupby(["kind", "seed", "step", "role"])["value"].apply(lambda v: prediction_band(v, level))
    roles = list(dict.fromkeys(m["role"]))
    fig, axes = style.figure(2, 2, width=10.0, height=6.6, sharex=True)
    for ax, role in zip(axes.flat, roles):
        g = m[m["role"] == role].set_index(["kind", "seed", "step", "role"])
        excess = (g["value"] - centre.reindex(g.index)).rename("excess").reset_index()
        for kind, h in excess.groupby("kind", sort=False):
            by = h.pivot_table(index="step", columns="seed", values="excess").sort_index()
            kw = style.init_style(kind)
            ax.plot(by.index, by.mean(axis=1), label=kind, linewidth=1.3, **kw)
            ax.fill_between(by.index, by.min(axis=1), by.max(axis=1), color=kw["color"], alpha=style.BAND_ALPHA,
                            linewidth=0)
        b = bands[bands.index.get_level_values("role") == role]
        c = centre.reindex(b.index)
        hi = pd.Series([x[1] for x in b], index=b.index) - c
        lo = pd.Series([x[0] for x in b], index=b.index) - c
        steps = hi.groupby("step").max().index
        ax.fill_between(steps, lo.groupby("step").min(), hi.groupby("step").max(), color="0.6", alpha=0.25,
                        linewidth=0, label=f"Gaussian draws, {level:.0%} band")
        ax.axhline(0, color="0.4", linewidth=0.6)
        style.step_axis(ax)
        ax.set_title(style.ROLE_LABELS.get(role, role))
    for ax in axes.flat[len(roles):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("W1 to Gaussian − draws' mean")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize="small")
    return fig


def steps_frame(steps: pd.DataFrame, total: int) -> pd.DataFrame:
    """The steps-to-target table for display: per init, the mean steps over seeds with its
    interval, or how many seeds reached the target within `total` steps."""
    rows = []
    for x in steps.itertuples():
        reached = x.reached == x.seeds
        rows.append({"init": x.kind,
                     "steps to the target": f"{x.steps:.3g}" if reached and np.isfinite(x.steps) else f"> {total}",
                     # a step count is never negative: the t interval on two seeds can reach below 0
                     "interval": f"[{max(x.low, 0):.3g}, {x.high:.3g}]" if reached and np.isfinite(x.low) else "—",
                     "seeds reaching it": f"{x.reached} of {x.seeds}", "per seed": x.per_seed})
    return pd.DataFrame(rows)


def share_frame(share: pd.DataFrame, step: int) -> pd.DataFrame:
    """The learned-excess shares (analysis.dynamics.learned_excess_share) at one step for
    display: a row per init kind, a column per role, each cell the mean share over seeds as
    a percentage with the seeds' range and ± the draws' band half-width in the same unit
    (mean over seeds; '—' where the role has no unit: its learned excess is within noise)."""
    at = share[share["step"] == step]
    rows = []
    for kind, g in at.groupby("kind", sort=False):
        row = {"init": kind}
        for role, h in g.groupby("role", sort=False):
            v, n = h["share"].to_numpy(dtype=np.float64), h["noise"].to_numpy(dtype=np.float64)
            row[style.ROLE_LABELS.get(role, role)] = ("—" if not np.isfinite(v).all() else
                                                      f"{100 * v.mean():.0f}% [{100 * v.min():.0f}, {100 * v.max():.0f}] "
                                                      f"±{100 * n.mean():.1f}")
        rows.append(row)
    return pd.DataFrame(rows)

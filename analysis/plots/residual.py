"""Figures of the residual-path toy model, effective depth and the toy against controls."""

import numpy as np
import pandas as pd

from .. import measures, residual
from . import style

# Controls of the toy-fit figure, in drawing order; markers tell them apart in grey.
CONTROL_LABELS = {"toy": "toy at best depth (held-out seeds)", "gaussian": "Gaussian fit",
                  "logistic": "logistic fit", "scaled": "Gaussian, log-normal row/col scales"}


def mean_path_length(depth, sigma2: float):
    """The study's 'effective depth' of a toy of depth L: the mean length of its paths,
    weighted by the variance they carry, L·σ²/(1+σ²)."""
    return np.asarray(depth) * sigma2 / (1 + sigma2)


def path_shares(depth: int, sigma2: float = 1.0, depths=(4, 8, 16, 32)):
    """Share of output variance carried by paths of each length k, for several toy depths
    (and the configured one), each with its mean path length marked. -> Figure"""
    depths = sorted({d for d in depths if d <= max(depth, max(depths))} | {int(depth)})
    fig, axes = style.figure(1, 1, width=7.5, height=3.6)
    ax = axes[0, 0]
    for d, color in zip(depths, style.sequential(len(depths))):
        k = np.arange(d + 1)
        ax.plot(k, residual.path_length_shares(d, sigma2), marker="o", markersize=3, color=color,
                label=f"L = {d}: {2.0**d:.3g} paths" + (" (this toy)" if d == depth else ""))
        ax.axvline(float(mean_path_length(d, sigma2)), color=color, linewidth=0.8, linestyle=":")
    ax.set_xlabel("path length k (blocks a path passes through)")
    ax.set_ylabel("share of output variance")
    ax.legend(fontsize="small", title="dotted: mean path length", title_fontsize="small")
    return fig


def variance_ratio(toy: dict) -> np.ndarray:
    """(depth, seeds) variance of the toy's outputs M_L x over (1+σ²)^L, which the path
    expansion predicts to be 1 for inputs x ~ N(0, I)."""
    act = np.asarray(toy["act"])
    depth = np.arange(1, act.shape[0] + 1)
    return act.var(axis=2) / (1 + float(toy["sigma2"])) ** depth[:, None]


def variance_check(toy: dict):
    """Measured output variance over the predicted (1+σ²)^L against depth: one point per
    seed and their mean. -> Figure"""
    ratio = variance_ratio(toy)
    depth = np.arange(1, ratio.shape[0] + 1)
    fig, axes = style.figure(1, 1, width=7.5, height=3.3)
    ax = axes[0, 0]
    jitter = np.linspace(-0.15, 0.15, ratio.shape[1])
    ax.scatter((depth[:, None] + jitter).ravel(), ratio.ravel(), s=10, color=style.TOY_COLOR, alpha=0.5,
               linewidths=0, label="one toy network (seed)")
    ax.plot(depth, ratio.mean(axis=1), color=style.TOY_COLOR, marker="o", markersize=4, label="mean over seeds")
    ax.axhline(1.0, **{k: v for k, v in style.BASELINES["gaussian"].items() if k != "label"}, label="prediction")
    ax.set_xlabel("toy depth L")
    ax.set_ylabel("Var(M_L x) / (1+σ²)^L")
    fig.legend(loc="outside lower center", ncol=3, fontsize="small")  # below: the seeds' points fill the panel
    return fig


def toy_spectra(toy: dict, depths=(1, 2, 4, 8, 16, 32), bins: int = 40):
    """Histograms of the square M_L's scale-normalised singular values (pooled over seeds)
    at several depths, against the quarter-circle law a square Gaussian matrix follows. -> Figure"""
    sv = toy[f"sv_{int(toy['width'])}"]
    depths = [d for d in depths if d <= sv.shape[0]]
    if sv.shape[0] not in depths:
        depths.append(sv.shape[0])
    fig, axes = style.figure(1, len(depths), width=min(10.0, 2.3 * len(depths)), height=2.7, sharey=True)
    # Log density: the spike at zero grows by orders of magnitude with depth, the tail thins.
    edges = np.linspace(0, 4, bins + 1)
    x = np.linspace(0, 2, 400)
    quarter_circle = np.sqrt(np.clip(4 - x**2, 0, None)) / np.pi  # σ / rms(σ) of a square Gaussian matrix
    for ax, depth in zip(axes[0], depths):
        values = np.concatenate([measures.normalised(s) for s in sv[depth - 1]])
        ax.hist(values, edges, density=True, color=style.TOY_COLOR, alpha=0.8, label="toy M_L")
        ax.plot(x, quarter_circle, **style.BASELINES["mp"])
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 30)
        ax.set_title(f"L = {depth}", fontsize="small")
        ax.set_xlabel("σ / rms(σ)")
    axes[0, 0].set_ylabel("density")
    axes[0, -1].legend(fontsize="x-small", loc="upper right")
    return fig


def depth_curves(curves: dict):
    """The toy's own non-Gaussianity against depth: excess kurtosis of M_L x, W1 and KS
    distance of the square M_L's spectrum to Marchenko-Pastur, power-law α. -> Figure"""
    panels = [("kurtosis", "excess kurtosis of M_L x"), ("w1_mp", "W1 of σ/rms to MP"),
              ("ks_mp", "KS distance to MP"), ("alpha", "power-law α of σ²")]
    fig, axes = style.figure(1, len(panels), width=10.0, height=2.8)
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(curves["depth"], curves[key], marker="o", markersize=3, color=style.TOY_COLOR)
        ax.set_xlabel("toy depth L")
        ax.set_title(label, fontsize="small")
    return fig


def _role_panels(roles, ncols: int = 2, width: float = 9.0, height_per_row: float = 2.6, **kw):
    nrows = -(-len(roles) // ncols)
    fig, axes = style.figure(nrows, ncols, width=width, height=height_per_row * nrows + 0.5, **kw)
    for ax in axes.flat[len(roles):]:
        ax.set_visible(False)
    return fig, axes


def effective_depth(table: pd.DataFrame, names: dict, sigma2: float, by: str, block: int | None = None):
    """Best-fitting toy depth L (line, band: 10-90% of per-seed best depths) against
    training step (`by="step"`, configured `block`) or block (`by="block"`, each run's last
    step); one panel per matrix role, runs styled by their role; the right axis reads the
    same values as the study's effective depth, the mean path length L·σ²/(1+σ²). -> Figure"""
    if by == "step":
        sub = table[table["block"] == block]
    else:
        last = table.groupby("run")["step"].transform("max")
        sub = table[table["step"] == last]
    roles = list(dict.fromkeys(sub["role"]))
    fig, axes = _role_panels(roles, sharex=True, sharey=True)
    top = float(sub["high"].max())
    for ax, role in zip(axes.flat, roles):
        color = style.ROLE_COLORS[role]
        for i, (run, run_role) in enumerate(names.items()):
            g = sub[(sub["role"] == role) & (sub["run"] == run)].sort_values(by)
            if g.empty:
                continue
            # Blocks are categories: runs side by side (dodged) so that equal depths stay visible.
            x = g[by] + (0.06 * (i - (len(names) - 1) / 2) if by == "block" else 0)
            ax.plot(x, g["effective_depth"], marker="o", markersize=3, color=color, **style.run_style(run_role))
            ax.fill_between(x, g["low"], g["high"], color=color, alpha=style.BAND_ALPHA / len(names), linewidth=0)
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
        ax.set_ylim(0, top + 1)
        right = ax.secondary_yaxis("right", functions=(lambda L: mean_path_length(L, sigma2),
                                                       lambda m: np.asarray(m) * (1 + sigma2) / sigma2))
        right.set_ylabel("mean path length", fontsize="x-small")
        right.tick_params(labelsize="x-small")
        if by == "step":
            style.step_axis(ax)
        else:
            ax.set_xticks(sorted(sub["block"].unique()))
    for ax in axes[-1]:
        ax.set_xlabel("training step" if by == "step" else "block")
    for ax in axes[:, 0]:
        ax.set_ylabel("best toy depth L")
    fig.legend(*style.run_handles(names), loc="outside lower center", ncol=style.legend_columns(len(names)), fontsize="small",
               title="band: 10–90% of the toy seeds' own best depths", title_fontsize="small")
    return fig


def toy_fit(fit: pd.DataFrame, names: dict):
    """W1(σ/rms) of the weights' spectrum to the toy at its best depth (one point per
    held-out toy seed) and to each non-product control (one point per draw), with their
    means (bar); one panel per matrix role, a group per run. Lower: closer. -> Figure"""
    roles = list(dict.fromkeys(fit["role"]))
    models = ["toy", *[m for m in style.CONTROLS if m != "toy" and m in set(fit["model"])]]
    runs = [n for n in names if n in set(fit["run"])]
    fig, axes = _role_panels(roles, width=9.5, height_per_row=2.9)
    offsets = np.linspace(-0.3, 0.3, len(models))
    rng = np.random.default_rng(0)  # horizontal jitter only: where points sit within their column
    for ax, role in zip(axes.flat, roles):
        for i, run in enumerate(runs):
            g = fit[(fit["role"] == role) & (fit["run"] == run)]
            for off, model in zip(offsets, models):
                w = g[g["model"] == model]["w1"].to_numpy()
                if not len(w):
                    continue
                if model == "toy":
                    kw = {"color": style.ROLE_COLORS[role], "marker": "o"}
                else:
                    kw = {**style.CONTROLS[model], "facecolors": "none"}
                x = i + off + rng.uniform(-0.04, 0.04, len(w))
                ax.scatter(x, w, s=14, alpha=0.8, linewidths=0.9, label=CONTROL_LABELS[model] if i == 0 else None, **kw)
                ax.plot([i + off - 0.07, i + off + 0.07], [w.mean()] * 2, color=kw["color"], linewidth=2)
        ax.set_xticks(range(len(runs)), [style.run_label(run, names[run], "\n") for run in runs], fontsize="x-small",
                      rotation=0 if len(runs) <= 3 else 25)
        ax.set_xlim(-0.5, len(runs) - 0.5)
        ax.set_title(style.ROLE_LABELS[role], fontsize="small")
        ax.set_ylim(bottom=0)
    for ax in axes[:, 0]:
        ax.set_ylabel("W1 of σ/rms(σ)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="small",
               title="bar: mean", title_fontsize="small")
    return fig


def toy_depth_frame(toy_depth: pd.DataFrame, names: dict) -> pd.DataFrame:
    """r.toy_depth for display: per run (with its role) and matrix, the best toy depth L
    (chosen on the first half of the toy's seeds), the 10-90% band of the held-out seeds'
    own best depths, the mean path length L·σ²/(1+σ²) and the held-out W1 at L."""
    return pd.DataFrame({
        "run": [f"{run} ({names.get(run, '?')})" for run in toy_depth["run"]],  # tables: full names
        "matrix": [style.ROLE_LABELS.get(role, role) for role in toy_depth["role"]],
        "best L (chosen on half the seeds)": toy_depth["depth"].astype(int),
        "best L (held-out seeds)": toy_depth["heldout_depth"].astype(int),
        "held-out seeds' own best L (10–90%)": [f"{lo:.3g}–{hi:.3g}" for lo, hi in zip(toy_depth["low"], toy_depth["high"])],
        "mean path length": toy_depth["mean_path_length"].map(lambda v: f"{v:.3g}"),
        "held-out W1": toy_depth["distance"].map(lambda v: f"{v:.3g}"),
    })

"""Figures of the residual-path toy model and of effective depth."""

import numpy as np

from .. import residual, shape
from . import style


def path_shares(depths=(4, 8, 16, 32), sigma2: float = 1.0):
    """Share of output variance carried by paths of each length k, for several depths. -> Figure"""
    fig, axes = style.figure(1, 1, width=7.0, height=3.6)
    ax = axes[0, 0]
    colors = style.sequential(len(depths))
    for depth, color in zip(depths, colors):
        k = np.arange(depth + 1)
        ax.plot(k, residual.path_length_shares(depth, sigma2), marker="o", markersize=3, color=color,
                label=f"L = {depth}: {2**depth:.3g} paths")
    ax.set_xlabel("path length k (blocks a path passes through)")
    ax.set_ylabel("share of output variance")
    ax.legend(fontsize="small")
    return fig


def toy_spectra(sim: dict, width: int, depths=(1, 2, 4, 8, 16, 32), bins: int = 40):
    """Histograms of the square M_L's scale-normalised singular values at several depths,
    against the quarter-circle (Marchenko-Pastur, square) law. -> Figure"""
    sv = sim[f"sv_{width}"]
    depths = [d for d in depths if d <= sv.shape[0]]
    fig, axes = style.figure(1, len(depths), width=2.3 * len(depths), height=2.6, sharey=True)
    # Log density: the spike at zero grows by orders of magnitude with depth, the tail thins.
    edges = np.linspace(0, 4, bins + 1)
    x = np.linspace(0, 2, 400)
    quarter_circle = np.sqrt(np.clip(4 - x**2, 0, None)) / np.pi  # sigma / rms(sigma), square MP
    for ax, depth in zip(axes[0], depths):
        values = np.concatenate([shape.normalised(s) for s in sv[depth - 1]])
        ax.hist(values, edges, density=True, color=style.TOY_COLOR, alpha=0.8, label="toy M_L")
        ax.plot(x, quarter_circle, **style.BASELINES["mp"])
        ax.set_yscale("log")
        ax.set_ylim(1e-3, 30)
        ax.set_title(f"L = {depth}")
        ax.set_xlabel("σ / rms(σ)")
    axes[0, 0].set_ylabel("density")
    axes[0, 0].legend(fontsize="x-small")
    return fig


def depth_curves(curves: dict):
    """Kurtosis of activations, KS distance to MP and power-law alpha against depth. -> Figure"""
    fig, axes = style.figure(1, 3, width=10.0, height=3.0)
    panels = [("kurtosis", "excess kurtosis of M_L x"), ("ks_mp", "KS distance of σ(M_L) to MP"),
              ("alpha", "power-law α of σ(M_L)²")]
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(curves["depth"], curves[key], marker="o", markersize=3, color=style.TOY_COLOR)
        ax.set_xlabel("toy depth L")
        ax.set_ylabel(label)
    return fig


def effective_depth_by(table, x: str, xlabel: str, runs=None):
    """Effective depth (with the seed band) against `x` ("block" or "step"), a line per role
    and run. -> Figure"""
    fig, axes = style.figure(1, 1, width=7.0, height=3.8)
    ax = axes[0, 0]
    for (role, run), g in table.groupby(["role", "run"], sort=False):
        if runs and run not in runs:
            continue
        g = g.sort_values(x)
        color = style.ROLE_COLORS[role]
        ax.plot(g[x], g["effective_depth"], marker="o", markersize=3, color=color,
                label=f"{style.ROLE_LABELS[role]} ({run})", **style.RUN_STYLES.get(run, {}))
        ax.fill_between(g[x], g["low"], g["high"], color=color, alpha=0.12, linewidth=0)
    if x == "step":
        style.step_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("effective depth (toy L)")
    ax.legend(fontsize="x-small", ncol=2)
    return fig

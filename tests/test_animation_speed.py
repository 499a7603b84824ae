"""The animations draw one figure and redraw only what changes (animation.redrawn_frames):
their frames must be, pixel for pixel, the static figures drawn anew for each step."""

import imageio_ffmpeg
import numpy as np
import pytest

from analysis.plots import animation, depth, style
from analysis.plots import weight_distribution as wd

STEPS = [0, 10, 200]
SHAPES = {"qkv": (16, 48), "attn_out": (16, 16), "mlp_in": (64, 16), "mlp_out": (16, 64)}


def spectra(blocks, roles, run="raw") -> list[dict]:
    """Records as the plots read them, heavier-tailed at later steps and deeper blocks."""
    rng = np.random.default_rng(0)
    out = []
    for step in STEPS:
        for block in blocks:
            for role in roles:
                rows, cols = SHAPES[role]
                k = min(rows, cols)
                sv = np.abs(rng.standard_t(3 + 30 / (1 + step + block), k)) * 0.02 + 1e-3
                scale = float(np.sqrt(np.mean(sv**2)))
                out.append({"run": run, "step": step, "block": block, "role": role, "sv": sv, "rows": rows,
                            "cols": cols, "gaussian": np.abs(rng.normal(size=(2, k))) * scale,
                            "logistic": np.abs(rng.logistic(size=(2, k))) * scale,
                            "gaussian_scale": scale / np.sqrt(max(rows, cols)), "key": f"{run}/{step}/{block}/{role}"})
    return out


def captured(module, monkeypatch, call) -> list[np.ndarray]:
    """The frames an animation hands to cached_mp4, as pixels."""
    got = []
    monkeypatch.setattr(module, "cached_mp4", lambda folder, stem, key, frames, fps: got.extend(frames()))
    call()
    return got


@pytest.mark.parametrize("blocks, roles", [(range(3), ["qkv", "mlp_in"]), (range(14), ["attn_out"])])
def test_block_animation_frames_are_block_grids_drawn_anew(blocks, roles, monkeypatch):
    # 14 blocks: the grid shows 12 and its title says so, on every frame.
    recs = spectra(blocks, roles)
    frames = captured(depth, monkeypatch, lambda: depth.block_animation(recs, "raw", "reference", None, 12, 3))
    assert len(frames) == len(STEPS)
    limits = depth._normalised_limits(recs, 12)
    for step, pixels in zip(STEPS, frames):
        title = f"{style.run_label('raw', 'reference')} · step {step} · weights (filled) vs Gaussian draw (line)"
        fig = depth.block_grid([r for r in recs if r["step"] == step], 12, limits, title)
        np.testing.assert_array_equal(pixels, animation.rgb(fig))


def test_weight_distribution_frames_are_frame_figures_drawn_anew(monkeypatch):
    # Four panels, the first with a legend over the bars: it must stay on top.
    recs = spectra([0], list(SHAPES))
    frames = captured(wd, monkeypatch, lambda: wd.animation(recs, "raw", "reference", None, 12, 3))
    assert len(frames) == len(STEPS)
    limits = wd.fixed_limits(recs, 12)
    for step, pixels in zip(STEPS, frames):
        fig = wd.frame([r for r in recs if r["step"] == step], limits, f"run raw (reference) · block 0 · step {step}")
        np.testing.assert_array_equal(pixels, animation.rgb(fig))


def test_the_frames_are_the_same_on_a_second_run(monkeypatch):
    recs = spectra(range(2), ["qkv"])
    runs = [captured(depth, monkeypatch, lambda: depth.block_animation(recs, "raw", "reference", None, 12, 3))
            for _ in range(2)]
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))


def test_the_mp4_has_a_frame_per_step_at_the_figures_size(tmp_path):
    recs = spectra(range(2), ["qkv", "mlp_out"])
    path = depth.block_animation(recs, "raw", "reference", tmp_path, 12, 3)
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == len(STEPS)
    height, width = animation.rgb(depth.block_grid([r for r in recs if r["step"] == 0], 12)).shape[:2]
    meta = next(imageio_ffmpeg.read_frames(str(path)))
    assert tuple(meta["size"]) == (width + -width % 16, height + -height % 16)  # padded to whole macroblocks
    # Figures, as other callers pass them, still make one frame each.
    fig = wd.frame([r for r in spectra([0], ["qkv"]) if r["step"] == 0], wd.fixed_limits(spectra([0], ["qkv"]), 12), "t")
    one = animation.write_mp4([fig, fig], tmp_path / "figures.mp4", 3)
    assert imageio_ffmpeg.count_frames_and_secs(str(one))[0] == 2

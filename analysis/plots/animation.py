"""Figures to MP4 with imageio-ffmpeg (which ships its own ffmpeg binary)."""

from operator import attrgetter
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ..files import atomic_path


def rgb(fig) -> np.ndarray:
    """(height, width, 3) uint8 pixels of a figure, drawn by Agg."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def freeze_layout(fig) -> None:
    """Place the axes once with the figure's layout engine and keep them there, for a
    figure redrawn as the frames of an animation whose changes move no axes."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def _drawn_over(fig, changing) -> list:
    """The visible artists a frame redraws, in a full draw's order: the `changing` ones and
    those a full draw lays over them within their axes (spines, a legend), which would
    otherwise end up under them. Others drawn later (an axes title above the axes) stay
    in the background: hiding them for it could move them, as matplotlib places an axes
    title from its drawn extent."""
    ids = {id(a) for a in changing}
    out = []
    for parent in (*fig.axes, fig):
        # Each axes draws its background patch first and the figure its axes before its
        # texts and legends: neither is redrawn.
        kids = sorted((a for a in parent.get_children() if a is not parent.patch and not isinstance(a, Axes)
                       and a.get_visible()), key=attrgetter("zorder"))
        first = next((i for i, a in enumerate(kids) if id(a) in ids), len(kids))
        out += [a for a in kids[first:] if id(a) in ids or a.get_window_extent().overlaps(parent.bbox)]
    return out


def redrawn_frames(fig, changing, show, items):
    """The pixels of `fig` for each of `items`, after show(item) has set the artists
    `changing` (their data, a figure title's text) and nothing else: no limits, no layout,
    no axes title (hiding one for the background can move it). The rest is drawn once as
    a background; a frame redraws only what it must over it (_drawn_over), in a full
    draw's order, so its pixels equal those of the same figure drawn anew (the tests check
    it) at a fraction of the cost. -> iterator of (height, width, 3) uint8"""
    freeze_layout(fig)  # before hiding anything: hidden artists get no room in a layout
    redrawn = _drawn_over(fig, changing)
    canvas = FigureCanvasAgg(fig)
    for a in redrawn:
        a.set_visible(False)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    for a in redrawn:
        a.set_visible(True)
    for item in items:
        show(item)
        canvas.restore_region(background)
        for a in redrawn:
            fig.draw_artist(a)
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _pad16(frame: np.ndarray) -> np.ndarray:
    """Pad with white to multiples of 16 pixels: H.264 wants them, and padding beats the
    resampling ffmpeg would otherwise do."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, -h % 16), (0, -w % 16), (0, 0)), constant_values=255)


def write_mp4(figures, path: Path, fps: float) -> Path:
    """Write an iterable of figures, or of their pixels ((height, width, 3) uint8, as from
    rgb or redrawn_frames), as an H.264 MP4 at `path`."""
    path = Path(path)
    writer = None
    with atomic_path(path) as tmp:
        try:
            for fig in figures:
                frame = _pad16(fig if isinstance(fig, np.ndarray) else rgb(fig))
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = imageio_ffmpeg.write_frames(
                        str(tmp), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                        macro_block_size=16, quality=7, ffmpeg_log_level="error",
                    )
                    writer.send(None)  # start the generator
                writer.send(frame)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"{path}: no frames to write")
    return path


def cached_mp4(folder, stem: str, key: dict, frames, fps: float) -> Path:
    """`folder/stem-<digest>.mp4`, written from `frames()` (as write_mp4 takes them) only when
    no file for this key exists: the key names the data and drawing settings, so a warm
    re-render reuses the video. Superseded versions of the same stem are removed."""
    from ..store import key_digest

    path = Path(folder) / f"{stem}-{key_digest({**key, 'fps': fps})[:16]}.mp4"
    if path.is_file():
        return path
    write_mp4(frames(), path, fps)
    for old in Path(folder).glob(f"{stem}-*.mp4"):
        if old != path:
            old.unlink()
    return path

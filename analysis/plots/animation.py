"""Figures to MP4 with imageio-ffmpeg (which ships its own ffmpeg binary)."""

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ..files import atomic_path


def rgb(fig) -> np.ndarray:
    """(height, width, 3) uint8 pixels of a figure, drawn by Agg."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _pad16(frame: np.ndarray) -> np.ndarray:
    """Pad with white to multiples of 16 pixels: H.264 wants them, and padding beats the
    resampling ffmpeg would otherwise do."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, -h % 16), (0, -w % 16), (0, 0)), constant_values=255)


def write_mp4(figures, path: Path, fps: float) -> Path:
    """Write an iterable of figures as an H.264 MP4 at `path`."""
    path = Path(path)
    writer = None
    with atomic_path(path) as tmp:
        try:
            for fig in figures:
                frame = _pad16(rgb(fig))
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
    """`folder/stem-<digest>.mp4`, written from `frames()` (an iterable of figures) only when
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

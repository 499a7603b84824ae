"""Figures to MP4 with imageio-ffmpeg (which ships its own ffmpeg binary)."""

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ..io_utils import atomic_path


def rgb(fig) -> np.ndarray:
    """(height, width, 3) uint8 pixels of a figure, drawn by Agg."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_mp4(figures, path: Path, fps: float) -> Path:
    """Write an iterable of figures as an H.264 MP4 at `path`."""
    path = Path(path)
    writer = None
    with atomic_path(path) as tmp:
        try:
            for fig in figures:
                frame = rgb(fig)
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

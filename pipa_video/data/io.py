"""Reading frames and labels: still images with OpenCV, video frames with decord.

All images come back as RGB uint8 (H, W, 3); train-id labels as uint8 (H, W). Errors name the file.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from pipa_video.data.index import DatasetError
from pipa_video.data.sources.layouts import VIDEO_EXTENSIONS

# OpenCV spawns its own thread pool per process; DataLoader workers already parallelise.
cv2.setNumThreads(1)


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as RGB uint8 (H, W, 3)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot read image {path}: missing or not a decodable image file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_unchanged(path: str | os.PathLike) -> np.ndarray:
    """An image file exactly as stored (bit depth and channels kept; colour channels in BGR order)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read {path}: missing or not a decodable image file")
    return img


def read_train_ids(path: str | os.PathLike) -> np.ndarray:
    """A converted train-id label PNG (uint8, single channel)."""
    label = read_unchanged(path)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DatasetError(
            f"{path}: expected a single-channel 8-bit train-id PNG, got shape {label.shape} "
            f"dtype {label.dtype}; re-run the prepare tool"
        )
    return label


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a PNG via a temp file then rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise DatasetError(f"cannot encode {path} as PNG (shape {array.shape}, dtype {array.dtype})")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


class VideoFrameReader:
    """Random access to video frames through decord, with a small per-process cache of open videos.

    A DataLoader worker keeps its own instance (the object is created lazily after fork), so open
    decord readers are never shared between processes.
    """

    def __init__(self, *, max_open: int = 4) -> None:
        self.max_open = max_open
        self._open: OrderedDict[str, object] = OrderedDict()

    def _reader(self, path: str):
        reader = self._open.get(path)
        if reader is None:
            reader = open_video(path)
            self._open[path] = reader
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(path)
        return reader

    def read(self, path: str | os.PathLike, frame: int) -> np.ndarray:
        reader = self._reader(str(path))
        if not 0 <= frame < len(reader):
            raise DatasetError(f"{path}: frame {frame} out of range, the video has {len(reader)} frames")
        return reader[frame].asnumpy()

    def __getstate__(self):  # open decord handles do not pickle; workers reopen them
        return {"max_open": self.max_open, "_open": OrderedDict()}


def open_video(path: str | os.PathLike):
    """A decord VideoReader, or a DatasetError naming the file when it is missing, unreadable or empty."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"video {path} not found")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as err:  # decord raises its own DECORDError with a C++ trace
        raise DatasetError(f"cannot decode video {path}: {str(err).splitlines()[0]}") from None
    if len(reader) == 0:
        raise DatasetError(f"video {path} has no frames")
    return reader


def read_frame(path: str | os.PathLike, frame: int, videos: VideoFrameReader | None = None) -> np.ndarray:
    """Frame ``frame`` of ``path``: the image itself, or the decoded frame of a video file."""
    if is_video(path):
        return (videos or VideoFrameReader()).read(path, frame)
    return read_rgb(path)

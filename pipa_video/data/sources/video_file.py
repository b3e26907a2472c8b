"""A user's own footage: ROOT is a video file or a folder of videos (.mp4, .avi, .mkv, .mov).

The building block of ``data.footage`` (``data_tools/prepare_video.py``), which also takes frame
folders and photos and extracts the frames of videos whose random access is not exact; this layout
refuses such videos. One sequence per video, named by its file stem; ``image`` is the video's path (relative to the
folder holding it) and ``frame`` the decoded frame number (decord). No labels. ``frame_step=k``
indexes frames 0, k, 2k, ...: clips use frame-number arithmetic, so their offsets must then be
multiples of k (a clip dataset names the missing frame otherwise).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipa_video.data import io as data_io
from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import Layout, LayoutOption, list_files, rel
from pipa_video.data.sources.layouts import VIDEO_EXTENSIONS

NAME = "video_file"
EXPECTED = f"ROOT is a video file or a folder of video files ({', '.join(VIDEO_EXTENSIONS)})"


def video_files(root: Path) -> list[Path]:
    return [root] if root.is_file() else list_files(root, VIDEO_EXTENSIONS)


def resolve_root(root: Path, *, frame_step: int) -> Path:
    return root.parent if root.is_file() else root


def check_root(root: Path, *, frame_step: int) -> None:
    if frame_step < 1:
        raise DatasetError(f"frame_step must be >= 1, got {frame_step}")
    if root.is_file() and not data_io.is_video(root):
        raise DatasetError(f"{root} is not a video file: expected {EXPECTED}")
    if root.is_dir() and not video_files(root):
        raise DatasetError(f"no video files in {root}: expected {EXPECTED}")


def sequence_names(videos: list[Path]) -> list[str]:
    """File stems, or full file names where two videos share a stem (clip.mp4, clip.avi)."""
    stems = [v.stem for v in videos]
    return [v.stem if stems.count(v.stem) == 1 else v.name for v in videos]


def scan(root: Path, *, frame_step: int) -> pd.DataFrame:
    from pipa_video.data.video_probe import probe_video  # data.io imports the layouts: import here

    data_root = resolve_root(root, frame_step=frame_step)
    videos = video_files(root)
    rows = []
    for video, name in zip(videos, sequence_names(videos)):
        probe = probe_video(video)  # DatasetError naming an unreadable/empty video
        if not probe.random_access_exact:
            raise DatasetError(f"{video}: decord's random access returns wrong frames for this file; prepare "
                               f"it with data_tools/prepare_video.py, which extracts its frames")
        num_frames = probe.frames  # decodable frames only
        image = rel(video, data_root)
        rows += [dict(sequence=name, frame=f, image=image, raw_label="")
                 for f in range(0, num_frames, frame_step)]
    return pd.DataFrame(rows)


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    resolve_root_fn=resolve_root,
    options=(
        LayoutOption("frame_step", int, 1,
                     "index every k-th decoded frame (0, k, 2k, ...); frame numbers stay the decoded "
                     "ones, so clip offsets must be multiples of k"),
    ),
    default_class_set="cityscapes19",
    frames_are_video=True,
    doc="Your own driving footage (video files), unlabelled.",
)

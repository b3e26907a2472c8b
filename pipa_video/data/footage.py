"""Your own footage -> a frame index, without labels (``data_tools/prepare_video.py ROOT --out DIR``).

ROOT may be
- a video file (.mp4, .avi, .mkv, .mov): one sequence, named after the file;
- a photo (.jpg, .jpeg, .png, .bmp): one one-frame clip;
- a folder holding any mix of: video files (one sequence each), sub-folders of image frames (one
  sequence each, frames in natural order of their names, all of one size) and loose photos (each
  its own one-frame clip, any size; ``root_images='frames'`` reads them as one sequence instead).

Every video is probed first (``video_probe``): only its decodable frames are indexed, its frame
rate is measured, and a video whose random access is not exact has its frames extracted in order
to ``DIR/frames/<sequence>/<frame:06d>.png``; ``meta.json``'s ``videos`` records which reading
applies. The index has no class set (``meta.class_set`` null, no pixel-count columns), so it
serves a model of any class set.

``prepare_footage`` writes everything (extracted frames, ``index.csv``, ``meta.json``) into a new
folder next to DIR (``.DIR.prepare-<random>``, as the other prepare tools do), which then replaces DIR
in one step (``atomic.replace_dir``): a failed or interrupted prepare leaves no output, and a failed
re-prepare keeps the previous index whole. The index records extracted frames relative to its own
folder (``frames_dir``), so it reads the same after the swap.
"""
from __future__ import annotations

import argparse
import shutil
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Sequence

import pandas as pd

from pipa_video.atomic import replace_dir
from pipa_video.data import io as data_io
from pipa_video.data.index import (BASE_COLUMNS, EXTRACTED, FRAME_FILE, INDEX_FILE, RANDOM_ACCESS, DatasetError,
                                   FrameIndex, IndexMeta, frame_index, write_index)
from pipa_video.data.prepare import staging_dir
from pipa_video.data.sources.base import absolute, image_size, list_files, natural_key, rel
from pipa_video.data.sources.layouts import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from pipa_video.data.video_probe import VideoProbe, iter_frames, probe_video
from pipa_video.errors import run_command

LAYOUT = "footage"
FRAMES_DIR = "frames"
EXPECTED = (f"ROOT is a video ({', '.join(VIDEO_EXTENSIONS)}), a photo ({', '.join(IMAGE_EXTENSIONS)}), or a "
            "folder of videos, frame folders (ROOT/<sequence>/<frames>) and photos")


class FootageWarning(UserWarning):
    """A video was indexed with a caveat (frames dropped, rate corrected, frames extracted)."""


class RootImages(str, Enum):
    PHOTOS = "photos"  # image files directly in ROOT are separate photos (one-frame clips)
    FRAMES = "frames"  # ... or the frames of one video, in natural order


class Kind(str, Enum):
    VIDEO = "video"
    FRAMES = "frames"
    PHOTO = "photo"


@dataclass(frozen=True)
class Item:
    """One sequence to index: a video, a folder of frames (``frames`` lists them) or a photo."""

    kind: Kind
    path: Path
    frames: tuple[Path, ...] = ()


def _natural(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: natural_key(p.name))


def find_footage(root: Path, *, root_images: RootImages = RootImages.PHOTOS) -> list[Item]:
    """The sequences under ``root`` (see the module docstring); a DatasetError when there are none."""
    if not root.exists():
        raise DatasetError(f"{root} not found: expected {EXPECTED}")
    suffix = root.suffix.lower()
    if root.is_file() and suffix in VIDEO_EXTENSIONS:
        return [Item(Kind.VIDEO, root)]
    if root.is_file() and suffix in IMAGE_EXTENSIONS:
        return [Item(Kind.PHOTO, root)]
    if root.is_file():
        raise DatasetError(f"{root} is neither a video nor a photo: expected {EXPECTED}")
    items = [Item(Kind.VIDEO, v) for v in _natural(list_files(root, VIDEO_EXTENSIONS))]
    for sub in _natural([p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]):
        frames = _natural(list_files(sub, IMAGE_EXTENSIONS))
        if frames:
            items.append(Item(Kind.FRAMES, sub, tuple(frames)))
    loose = _natural(list_files(root, IMAGE_EXTENSIONS))
    if loose and root_images is RootImages.FRAMES:
        items.append(Item(Kind.FRAMES, root, tuple(loose)))
    else:
        items += [Item(Kind.PHOTO, p) for p in loose]
    if not items:
        raise DatasetError(f"no videos, frame folders or photos in {root}: expected {EXPECTED}")
    return items


def sequence_names(items: list[Item], data_root: Path) -> list[str]:
    """Stems (folder names), or paths relative to the root where two items share one (a.mp4, a.avi)."""
    stems = [i.path.stem if i.kind is not Kind.FRAMES else i.path.name for i in items]
    return [s if stems.count(s) == 1 else (rel(i.path, data_root) if i.path != data_root else i.path.name)
            for s, i in zip(stems, items)]


def _check_frame_sizes(item: Item, *, verify: bool) -> None:
    """Frames of one sequence share a size (headers only, unless ``verify`` decodes every pixel)."""
    first = None
    for frame in item.frames:
        hw = data_io.read_rgb(frame).shape[:2] if verify else image_size(frame)
        first = first or (frame, hw)
        if hw != first[1]:
            raise DatasetError(f"{frame} is {hw[1]}x{hw[0]} but {first[0]} is {first[1][1]}x{first[1][0]}: the "
                               f"frames of one sequence share a size (photos of any size go directly in ROOT)")


def extract_frames(video: Path, out_dir: Path, *, frames: range) -> None:
    """Decode ``video`` in order and write the frames numbered in ``frames`` as PNGs (lossless)."""
    import cv2

    wanted = set(frames)
    for number, rgb in enumerate(iter_frames(video)):
        if number in wanted:
            data_io.write_png(out_dir / FRAME_FILE.format(frame=number), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if number >= frames[-1]:
            break  # before decoding further: a cut or corrupt video cannot decode past its indexed frames


def _video_rows(item: Item, name: str, *, data_root: Path, out_dir: Path, shown_dir: Path, frame_step: int,
                quiet: bool) -> tuple[list[dict], dict]:
    probe: VideoProbe = probe_video(item.path)
    for message in probe.warnings():
        warnings.warn(message, FootageWarning, stacklevel=2)
    numbers = range(0, probe.frames, frame_step)
    # A video that stops decoding is read from extracted frames too: decord's threaded reader can raise the
    # decoder's error frames before the cut (video_probe), wherever the sampled reads happened to succeed.
    exact = probe.random_access_exact and not probe.decode_error
    record = dict(sequence=name, reading=RANDOM_ACCESS if exact else EXTRACTED,
                  frames=probe.frames, decoder_frames=probe.decoder_frames, fps=probe.fps,
                  header_fps=probe.stream.header_fps, frame_step=frame_step)
    if not exact:
        record["frames_dir"] = f"{FRAMES_DIR}/{name}"
        if not quiet:
            print(f"extracting {len(numbers)} frames of {item.path} to {shown_dir / record['frames_dir']}",
                  flush=True)
        extract_frames(item.path, out_dir / record["frames_dir"], frames=numbers)
    image = rel(item.path, data_root)
    return [dict(sequence=name, frame=f, image=image) for f in numbers], record


def _rows(item: Item, name: str, *, data_root: Path, verify: bool) -> list[dict]:
    if item.kind is Kind.PHOTO:
        if verify:
            data_io.read_rgb(item.path)
        else:
            image_size(item.path)  # a DatasetError for what is not an image
        return [dict(sequence=name, frame=0, image=rel(item.path, data_root))]
    _check_frame_sizes(item, verify=verify)
    return [dict(sequence=name, frame=i, image=rel(p, data_root)) for i, p in enumerate(item.frames)]


@dataclass(frozen=True)
class Footage:
    """Footage indexed in memory: the index, and per sequence what it came from (video, frames, photo)."""

    index: FrameIndex
    items: tuple[Item, ...]
    names: tuple[str, ...]  # each item's sequence name

    def kind(self, sequence: str) -> Kind:
        return self.items[self.names.index(sequence)].kind


def index_footage(root: str | Path, work_dir: str | Path, *, frame_step: int = 1,
                  root_images: RootImages | str = RootImages.PHOTOS, verify_images: bool = False,
                  quiet: bool = True, final_dir: str | Path | None = None) -> Footage:
    """Probe and index the footage under ``root`` in memory (nothing written but the frames of videos
    whose random access is not exact, extracted under ``work_dir/frames``, the index's directory).
    ``final_dir``: where ``work_dir`` is published afterwards (a staging folder's destination), named
    in the progress lines instead of ``work_dir``.

    What ``prepare_footage`` writes and what ``pipa-video predict`` reads a raw input through. Raises
    ``DatasetError`` naming the file for unreadable input.
    """
    if frame_step < 1:
        raise DatasetError(f"--frame-step must be >= 1, got {frame_step}")
    root, work_dir = absolute(root), absolute(work_dir)
    shown_dir = absolute(final_dir) if final_dir is not None else work_dir
    items = find_footage(root, root_images=RootImages(root_images))
    data_root = root if root.is_dir() else root.parent
    names = sequence_names(items, data_root)
    rows, videos = [], {}
    for item, name in zip(items, names):
        if item.kind is Kind.VIDEO:
            item_rows, record = _video_rows(item, name, data_root=data_root, out_dir=work_dir, shown_dir=shown_dir,
                                            frame_step=frame_step, quiet=quiet)
            videos[item_rows[0]["image"]] = record
        else:
            item_rows = _rows(item, name, data_root=data_root, verify=verify_images)
        rows += item_rows
    table = pd.DataFrame(rows).assign(label="", labelled=False)[list(BASE_COLUMNS)]
    meta = IndexMeta(layout=LAYOUT, root=str(data_root), class_set=None, videos=videos)
    return Footage(frame_index(table, meta, work_dir), tuple(items), tuple(names))


def prepare_footage(root: str | Path, out_dir: str | Path, *, frame_step: int = 1,
                    root_images: RootImages | str = RootImages.PHOTOS, verify_images: bool = False,
                    quiet: bool = False) -> Path:
    """Index the footage under ``root`` into ``out_dir`` (``index.csv``, ``meta.json``, ``frames/``).

    ``frame_step=k`` indexes video frames 0, k, 2k, ... (clip offsets must then be multiples of k).
    Everything is written into a staging folder that replaces ``out_dir`` whole at the end (module
    docstring): on any failure nothing is left. ``out_dir`` must be new, empty or an index. Raises
    ``DatasetError`` naming the file for unreadable input. Returns ``out_dir``.
    """
    out_dir = absolute(out_dir)
    if frame_step < 1:  # before creating anything
        raise DatasetError(f"--frame-step must be >= 1, got {frame_step}")
    find_footage(absolute(root), root_images=RootImages(root_images))  # a wrong ROOT fails before any folder
    staging = staging_dir(out_dir)
    try:
        footage = index_footage(root, staging, frame_step=frame_step, root_images=root_images,
                                verify_images=verify_images, quiet=quiet, final_dir=out_dir)
        write_index(staging, footage.index.frames, footage.index.meta)
        replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not quiet:
        print(summary_text(list(footage.items), footage.index.frames, footage.index.meta.videos,
                           header=f"prepared footage {absolute(root)} -> {out_dir / INDEX_FILE}"))
    return out_dir


def summary_text(items: list[Item], table: pd.DataFrame, videos: dict, *, header: str) -> str:
    counts = {kind: sum(i.kind is kind for i in items) for kind in Kind}
    extracted = [r["sequence"] for r in videos.values() if r["reading"] == EXTRACTED]
    lines = [header,
             f"  videos: {counts[Kind.VIDEO]}   frame folders: {counts[Kind.FRAMES]}   photos (one-frame clips): "
             f"{counts[Kind.PHOTO]}   frames indexed: {len(table)} in {table['sequence'].nunique()} sequences",
             "  no labels; the index serves any class set"]
    for record in videos.values():
        fps = f"{record['fps']:.3f} fps" if record["fps"] else "unknown fps"
        lines.append(f"  {record['sequence']}: {record['frames']} frames, {fps}, read by {record['reading']}")
    if extracted:
        lines.append(f"  frames extracted (random access was not exact) for: {', '.join(extracted)}")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prepare_video.py",
        description="Index your own footage (no labels) for adaptation, prediction and tc-report. Writes "
                    "DIR/index.csv and DIR/meta.json, and DIR/frames/ for videos whose random access is not "
                    f"frame-exact. {EXPECTED}; loose photos become one-frame clips.")
    parser.add_argument("root", type=Path, help="a video, a photo, or a folder of videos, frame folders and photos")
    parser.add_argument("--out", type=Path, required=True, help="index directory to write")
    parser.add_argument("--frame-step", type=int, default=1,
                        help="index every k-th video frame (0, k, 2k, ...); clip offsets must then be "
                             "multiples of k (default: 1)")
    parser.add_argument("--root-images", choices=[r.value for r in RootImages], default=RootImages.PHOTOS.value,
                        help="image files directly in ROOT: separate photos (one-frame clips) or the frames "
                             "of one video (default: photos)")
    parser.add_argument("--verify-images", action="store_true",
                        help="decode every image fully, refusing truncated files (default: read headers only)")
    parser.add_argument("--quiet", action="store_true", help="no summary")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``data_tools/prepare_video.py``: one error line and the exit code of its kind (``pipa_video.errors``),
    as the other prepare tools; warnings are one ``prepare_video.py: warning:`` line each (``run_command``)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def run() -> int:
        prepare_footage(args.root, args.out, frame_step=args.frame_step, root_images=args.root_images,
                        verify_images=args.verify_images, quiet=args.quiet)
        return 0

    return run_command(run, prog=parser.prog, debug=args.debug)

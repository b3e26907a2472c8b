"""Cityscapes-Seq (target video): 30-frame snippets around each annotated frame.

Snippets are found from the gtFine files, never from a fixed frame number: the annotated frame is
``000019`` in most training cities but arbitrary elsewhere (``frankfurt_000000_000294``). A snippet
holds the ``leftImg8bit_sequence`` frames of the same city and sequence within ``-CS_SEQ_BEFORE ..
+CS_SEQ_AFTER`` of the annotated frame that exist on disk; it is named ``{city}_{seq}_{anchor}``.
Splits without gtFine (``unannotated=True``) become runs of consecutive frames, all unlabelled.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import Layout, LayoutOption, read_index_png, require_dir, split_option
from pipa_video.data.sources.layouts import (
    CS_GT_DIR, CS_IMG_SUFFIX, CS_LABEL_SUFFIX, CS_NAME_RE, CS_SEQ_AFTER, CS_SEQ_BEFORE, CS_SEQ_IMG_DIR,
    cityscapes_label, cityscapes_seq_image, cityscapes_stem,
)

NAME = "cityscapes_seq"
ID_SPACE = "cityscapes"
EXPECTED = ("ROOT/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png with "
            "ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png for the annotated frames")
UNANNOTATED_HELP = ("the split has no gtFine labels: build unlabelled snippets from the image files "
                    "(each run of consecutive frames of a city+sequence)")


def parse_name(name: str, suffix: str) -> tuple[str, int, int] | None:
    """(city, seq, frame) of a Cityscapes file name ending in ``suffix``, else None."""
    match = CS_NAME_RE.match(name)
    if match is None or "_" + match["suffix"] != suffix:
        return None
    return match["city"], int(match["seq"]), int(match["frame"])


def city_frames(folder: Path, suffix: str) -> dict[tuple[str, int], list[int]]:
    """Sorted frame numbers per (city, seq) of the files in one city folder."""
    frames: dict[tuple[str, int], list[int]] = defaultdict(list)
    if folder.is_dir():
        for path in folder.iterdir():
            parsed = parse_name(path.name, suffix)
            if parsed is not None:
                city, seq, frame = parsed
                frames[(city, seq)].append(frame)
    return {key: sorted(v) for key, v in frames.items()}


def check_split_dirs(root: Path, image_dir: str, *, split: str, unannotated: bool, expected: str) -> None:
    """``image_dir/<split>`` and, unless the split is unannotated, ``gtFine/<split>`` (Cityscapes, -Seq)."""
    require_dir(root / image_dir / split, expected=expected)
    if not unannotated and not (root / CS_GT_DIR / split).is_dir():
        raise DatasetError(f"{root / CS_GT_DIR / split} not found: expected {expected} "
                           f"(for a split without labels pass unannotated=True / --unannotated)")


def check_root(root: Path, *, split: str, unannotated: bool) -> None:
    check_split_dirs(root, CS_SEQ_IMG_DIR, split=split, unannotated=unannotated, expected=EXPECTED)


def _snippet_rows(split: str, city: str, seq: int, anchor: int, frames: list[int]) -> list[dict]:
    name = cityscapes_stem(city, seq, anchor)
    window = [f for f in frames if anchor - CS_SEQ_BEFORE <= f <= anchor + CS_SEQ_AFTER]
    return [dict(sequence=name, frame=f, image=cityscapes_seq_image(split, city, seq, f),
                 raw_label=cityscapes_label(split, city, seq, f) if f == anchor else "")
            for f in window]


def scan_annotated(root: Path, split: str) -> list[dict]:
    rows: list[dict] = []
    gt_root = root / CS_GT_DIR / split
    for city_dir in sorted(p for p in gt_root.iterdir() if p.is_dir()):
        images = city_frames(root / CS_SEQ_IMG_DIR / split / city_dir.name, CS_IMG_SUFFIX)
        for (city, seq), anchors in sorted(city_frames(city_dir, CS_LABEL_SUFFIX).items()):
            frames = images.get((city, seq), [])
            for anchor in anchors:
                if anchor not in frames:
                    image = root / cityscapes_seq_image(split, city, seq, anchor)
                    raise DatasetError(
                        f"{image} not found: it is the annotated frame of "
                        f"{root / cityscapes_label(split, city, seq, anchor)}; expected {EXPECTED}")
                rows += _snippet_rows(split, city, seq, anchor, frames)
    if not rows:
        raise DatasetError(f"no *{CS_LABEL_SUFFIX} files under {gt_root}: expected {EXPECTED}")
    return rows


def consecutive_runs(frames: list[int]) -> list[list[int]]:
    """Split sorted frame numbers into runs without gaps."""
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    return [run.tolist() for run in np.split(np.asarray(frames), breaks)]


def scan_unannotated(root: Path, split: str) -> list[dict]:
    rows: list[dict] = []
    img_root = root / CS_SEQ_IMG_DIR / split
    for city_dir in sorted(p for p in img_root.iterdir() if p.is_dir()):
        for (city, seq), frames in sorted(city_frames(city_dir, CS_IMG_SUFFIX).items()):
            for run in consecutive_runs(frames):
                name = cityscapes_stem(city, seq, run[0])
                rows += [dict(sequence=name, frame=f, image=cityscapes_seq_image(split, city, seq, f),
                              raw_label="") for f in run]
    return rows


def scan(root: Path, *, split: str, unannotated: bool) -> pd.DataFrame:
    return pd.DataFrame(scan_unannotated(root, split) if unannotated else scan_annotated(root, split))


def read_raw_label(path: Path) -> np.ndarray:
    """Cityscapes labelIds (H, W) uint8."""
    return read_index_png(path, what="Cityscapes labelIds label")


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    options=(
        split_option("Cityscapes split (train, val, test)"),
        LayoutOption("unannotated", bool, False, UNANNOTATED_HELP),
    ),
    default_class_set=None,  # the target's class set is the source's: always say which
    doc="Cityscapes-Seq video snippets around the annotated frames (target domain).",
)

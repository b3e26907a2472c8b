"""Tiny ACDC and Dark Zurich trees in their published layouts (``sources.layouts`` templates).

Both write reference images next to the frames (they must never be listed), label files of the
kinds asked for (labelTrainIds, labelIds, or both, plus the colour and invalid-region files the
releases also ship, which must be ignored) and no labels for the test split. ``Tree.raw_labels``
holds each label's Cityscapes labelIds, whatever kind was written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipa_video.data.classes import label_lut
from pipa_video.data.sources import layouts as L
from tests.data.fixtures import Tree, cityscapes_raw_label, random_rgb, write_grey_png, write_rgb

SCAN_COLUMNS = ["sequence", "frame", "image", "raw_label", "condition"]
# One recording per ACDC condition; frame numbers are ACDC-like (not consecutive).
ACDC_SEQUENCES = {"fog": "GOPR0475", "night": "GOPR0351", "rain": "GOPR0400", "snow": "GOPR0122"}
KIND_SUFFIX = {"trainids": L.ADVERSE_TRAINIDS_SUFFIX, "labelids": L.ADVERSE_LABELIDS_SUFFIX}


def _expected(rows: list[dict]) -> pd.DataFrame:
    frames = pd.DataFrame(rows, columns=SCAN_COLUMNS)
    return frames.sort_values(["sequence", "frame"], kind="stable").reset_index(drop=True)


def write_label_files(root: Path, label_of_kind: dict[str, str], raw: np.ndarray, *, extras: bool = True) -> None:
    """Write the label kinds in ``label_of_kind`` (kind -> path) for labelIds ``raw``, plus the
    release's colour and invalid-region files when ``extras``."""
    for kind, path in label_of_kind.items():
        ids = label_lut("cityscapes", "cityscapes19")[raw] if kind == "trainids" else raw
        write_grey_png(root / path, ids)
    if extras:
        any_path = root / next(iter(label_of_kind.values()))
        stem = any_path.name.split("_gt_")[0]
        write_rgb(any_path.parent / f"{stem}_gt_labelColor.png", np.zeros((*raw.shape, 3), np.uint8))
        write_grey_png(any_path.parent / f"{stem}_gt_invIds.png", np.zeros(raw.shape, np.uint8))


def _frame(tree: Tree, rng, root: Path, image: str, labels: dict[str, str]) -> str:
    tree.images[image] = random_rgb(rng)
    write_rgb(root / image, tree.images[image])
    if not labels:
        return ""
    raw = cityscapes_raw_label(rng)
    write_label_files(root, labels, raw)
    label = labels.get("trainids", labels.get("labelids"))  # the reader prefers labelTrainIds
    tree.raw_labels[label] = raw
    return label


def make_acdc_tree(root: Path, *, split: str = "val", conditions: Sequence[str] = ("fog", "night"),
                   frames: Sequence[int] = (41, 120), kinds: Sequence[str] = ("trainids",),
                   flattened: bool = False, sequences: dict[str, str] | None = None, seed: int = 0) -> Tree:
    """ACDC in its published layout (or HRDA's flattened one) with ``*_ref`` reference images."""
    rng = np.random.default_rng(seed)
    sequences = sequences or ACDC_SEQUENCES
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for condition in conditions:
        seq = sequences[condition]
        for frame in frames:
            if flattened:
                image = L.acdc_flat_image(split, seq, frame)
                labels = {"trainids": L.acdc_flat_label(split, seq, frame)}  # HRDA copies labelTrainIds only
            else:
                image = L.acdc_image(condition, split, seq, frame)
                labels = {k: L.acdc_label(condition, split, seq, frame, KIND_SUFFIX[k]) for k in kinds}
                write_rgb(root / L.acdc_ref_image(condition, split, seq, frame), random_rgb(rng))
            label = _frame(tree, rng, root, image, {} if split == "test" else labels)
            rows.append(dict(sequence=seq if flattened else f"{condition}_{seq}", frame=frame, image=image,
                             raw_label=label, condition=L.ACDC_UNKNOWN_CONDITION if flattened else condition))
    tree.frames = _expected(rows)
    return tree


def make_dark_zurich_tree(root: Path, *, split: str = "val", times: Sequence[str] = ("night",),
                          sequences: Sequence[str] = ("GOPR0356",), frames: Sequence[int] = (1, 2, 3),
                          kinds: Sequence[str] = ("trainids",), seed: int = 0) -> Tree:
    """Dark Zurich ``rgb_anon/{split}/{time}/{seq}/`` with day references in ``{split}_ref``; labels for val."""
    rng = np.random.default_rng(seed)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for t in times:
        for seq in sequences:
            for frame in frames:
                image = L.dark_zurich_image(split, t, seq, frame)
                write_rgb(root / L.dark_zurich_ref_image(split, seq, frame), random_rgb(rng))
                labels = ({k: L.dark_zurich_label(split, t, seq, frame, KIND_SUFFIX[k]) for k in kinds}
                          if split == "val" else {})
                label = _frame(tree, rng, root, image, labels)
                rows.append(dict(sequence=f"{t}_{seq}", frame=frame, image=image, raw_label=label, condition=t))
    tree.frames = _expected(rows)
    return tree

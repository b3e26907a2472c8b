"""Tiny dataset trees written in the exact real on-disk layouts (``sources.layouts`` templates).

Every builder returns a ``Tree``: what it wrote (the expected scan, the raw ids of every label, the
RGB of every image), so tests compare readers and prepare tools against ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from pipa_video.data.classes import CITYSCAPES_LABELIDS, SYNTHIA_RAND_IDS, SYNTHIA_SEQ_IDS, VIPER_CAR_ID, VIPER_PALETTE
from pipa_video.data.sources import layouts as L

HEIGHT, WIDTH = 16, 32
SCAN_COLUMNS = ["sequence", "frame", "image", "raw_label"]
VIPER_IDS_WITHOUT_CAR = np.array([i for i in range(len(VIPER_PALETTE)) if i != VIPER_CAR_ID])
VIPER_VAN_ID, VIPER_TRAIN_ID = 25, 29  # share one colour in the RGB palette


@dataclass
class Tree:
    root: Path
    frames: pd.DataFrame  # the expected scan (sequence, frame, image, raw_label), sorted
    raw_labels: dict[str, np.ndarray] = field(default_factory=dict)  # raw label path -> raw ids written
    images: dict[str, np.ndarray] = field(default_factory=dict)  # image path -> RGB written
    ego_masks: dict[str, np.ndarray] = field(default_factory=dict)  # VIPER: raw label path -> ego pixels


def _expected(rows: list[dict]) -> pd.DataFrame:
    frames = pd.DataFrame(rows, columns=SCAN_COLUMNS)
    return frames.sort_values(["sequence", "frame"], kind="stable").reset_index(drop=True)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), path


def random_rgb(rng: np.random.Generator, size: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def write_palette_png(path: Path, ids: np.ndarray, palette: Sequence[tuple[int, int, int]]) -> None:
    """A mode-P PNG whose palette index is the id (how VIPER and GTA5 ship their labels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    flat = [c for rgb in palette for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path)


def write_grey_png(path: Path, ids: np.ndarray) -> None:
    """A single-channel 8-bit PNG (Cityscapes labelIds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), ids.astype(np.uint8)), path


def write_synthia_label(path: Path, class_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 16-bit 3-channel PNG with the class in R and *different* values in G (instance) and B.

    Returns the (H, W, 3) RGB array written, so a test can check the class came from R only.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = class_ids.shape
    rgb = np.stack([class_ids.astype(np.uint16),
                    rng.integers(256, 4000, (h, w), dtype=np.uint16),  # instance ids
                    rng.integers(100, 60000, (h, w), dtype=np.uint16)], axis=-1)
    assert cv2.imwrite(str(path), rgb[..., ::-1].copy()), path  # OpenCV writes BGR
    return rgb


# --- VIPER -----------------------------------------------------------------------------------------
def viper_raw_label(rng: np.random.Generator, *, ego: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(raw VIPER ids, ego mask): random non-car ids, a car blob at the top left (not the ego vehicle)
    and, with ``ego``, a car region touching the bottom-centre pixel."""
    raw = rng.choice(VIPER_IDS_WITHOUT_CAR, size=(HEIGHT, WIDTH)).astype(np.uint8)
    raw[0:4, 0:6] = VIPER_CAR_ID  # another car: must keep its car label
    ego_mask = np.zeros(raw.shape, bool)
    if ego:
        ego_mask[HEIGHT - 4:, WIDTH // 2 - 6: WIDTH // 2 + 6] = True
        raw[ego_mask] = VIPER_CAR_ID
    raw[5, 8], raw[5, 9] = VIPER_VAN_ID, VIPER_TRAIN_ID  # the two ids that share a colour
    return raw, ego_mask


def make_viper_tree(root: Path, *, seqs: Sequence[int] = (1, 2), frames: Sequence[int] = range(1, 22),
                    image_ext: str | Sequence[str] = "jpg", rgb_labels: bool = False, label_step: int = 10,
                    split: str = "train", seed: int = 0) -> Tree:
    """``VIPER/{split}/img|cls/...``; a cls PNG for every frame whose number is a multiple of
    ``label_step``. ``image_ext`` may be a list (cycled) to mix jpg and png frames."""
    rng = _rng(seed)
    exts = [image_ext] if isinstance(image_ext, str) else list(image_ext)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for seq in seqs:
        for i, frame in enumerate(frames):
            image = L.viper_image(split, seq, frame, exts[i % len(exts)])
            rgb = random_rgb(rng)
            write_rgb(root / image, rgb)
            tree.images[image] = rgb
            label = ""
            if frame % label_step == 0:
                label = L.viper_label(split, seq, frame)
                raw, ego = viper_raw_label(rng)
                if rgb_labels:
                    write_rgb(root / label, np.asarray(VIPER_PALETTE, np.uint8)[raw])
                else:
                    write_palette_png(root / label, raw, VIPER_PALETTE)
                tree.raw_labels[label], tree.ego_masks[label] = raw, ego
            rows.append(dict(sequence=f"{seq:03d}", frame=frame, image=image, raw_label=label))
    (root / split / L.VIPER_CLS_DIR).mkdir(parents=True, exist_ok=True)
    tree.frames = _expected(rows)
    return tree


# --- Cityscapes ------------------------------------------------------------------------------------
DEFAULT_CS_ANCHORS = (("frankfurt", 0, 294), ("aachen", 0, 19), ("lindau", 0, 5))


def cityscapes_raw_label(rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.asarray(CITYSCAPES_LABELIDS), size=(HEIGHT, WIDTH)).astype(np.uint8)


def make_cityscapes_seq_tree(root: Path, *, split: str = "val",
                             anchors: Sequence[tuple[str, int, int]] = DEFAULT_CS_ANCHORS,
                             with_labels: bool = True, seed: int = 0) -> Tree:
    """``leftImg8bit_sequence/{split}/{city}/...``: the frames -19..+10 around each anchor that are
    >= 0 (a snippet near frame 0 is short), and the anchor's gtFine labelIds."""
    rng = _rng(seed)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for city, seq, anchor in anchors:
        name = L.cityscapes_stem(city, seq, anchor)
        for frame in range(max(0, anchor - L.CS_SEQ_BEFORE), anchor + L.CS_SEQ_AFTER + 1):
            image = L.cityscapes_seq_image(split, city, seq, frame)
            rgb = random_rgb(rng)
            write_rgb(root / image, rgb)
            tree.images[image] = rgb
            label = ""
            if frame == anchor and with_labels:
                label = L.cityscapes_label(split, city, seq, frame)
                raw = cityscapes_raw_label(rng)
                write_grey_png(root / label, raw)
                tree.raw_labels[label] = raw
            rows.append(dict(sequence=name, frame=frame, image=image, raw_label=label))
    tree.frames = _expected(rows)
    return tree


def make_cityscapes_tree(root: Path, *, split: str = "val",
                         images: Sequence[tuple[str, int, int]] = (("frankfurt", 0, 294), ("munster", 1, 19)),
                         seed: int = 0) -> Tree:
    """``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with ``gtFine`` labelIds, one image each."""
    rng = _rng(seed)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for city, seq, frame in images:
        image, label = L.cityscapes_image(split, city, seq, frame), L.cityscapes_label(split, city, seq, frame)
        tree.images[image] = random_rgb(rng)
        write_rgb(root / image, tree.images[image])
        tree.raw_labels[label] = cityscapes_raw_label(rng)
        write_grey_png(root / label, tree.raw_labels[label])
        rows.append(dict(sequence=L.cityscapes_stem(city, seq, frame), frame=frame, image=image, raw_label=label))
    tree.frames = _expected(rows)
    return tree


# --- SYNTHIA ---------------------------------------------------------------------------------------
def make_synthia_seq_tree(root: Path, *, seqs: Sequence[str] = ("SYNTHIA-SEQS-04-DAWN",),
                          frames: Sequence[int] = range(1, 5), seed: int = 0) -> Tree:
    """``{seq}/RGB/Stereo_Left/Omni_F/{frame:06d}.png`` + 16-bit labels, under ``root``."""
    rng = _rng(seed)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for seq in seqs:
        for frame in frames:
            image, label = L.synthia_seq_image(seq, frame), L.synthia_seq_label(seq, frame)
            tree.images[image] = random_rgb(rng)
            write_rgb(root / image, tree.images[image])
            classes = rng.choice(np.asarray(SYNTHIA_SEQ_IDS), size=(HEIGHT, WIDTH))
            write_synthia_label(root / label, classes, rng)
            tree.raw_labels[label] = classes
            rows.append(dict(sequence=seq, frame=frame, image=image, raw_label=label))
    tree.frames = _expected(rows)
    return tree


def make_synthia_tree(root: Path, *, frames: Sequence[int] = (0, 1, 2), seed: int = 0) -> Tree:
    """SYNTHIA-RAND-CITYSCAPES: ``RGB/{id:07d}.png`` + 16-bit ``GT/LABELS/{id:07d}.png``."""
    rng = _rng(seed)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for frame in frames:
        image, label = L.synthia_image(frame), L.synthia_label(frame)
        tree.images[image] = random_rgb(rng)
        write_rgb(root / image, tree.images[image])
        classes = rng.choice(np.asarray(SYNTHIA_RAND_IDS), size=(HEIGHT, WIDTH))
        write_synthia_label(root / label, classes, rng)
        tree.raw_labels[label] = classes
        rows.append(dict(sequence=f"{frame:07d}", frame=frame, image=image, raw_label=label))
    tree.frames = _expected(rows)
    return tree


# --- GTA5 ------------------------------------------------------------------------------------------
CS_LABELID_PALETTE = tuple((i * 7 % 256, i * 13 % 256, i * 29 % 256) for i in range(256))


def make_gta_tree(root: Path, *, frames: Sequence[int] = (1, 2, 3), mismatched: Sequence[int] = (),
                  seed: int = 0) -> Tree:
    """``images/{id:05d}.png`` + palette ``labels/{id:05d}.png`` (labelIds); frames in
    ``mismatched`` get a label 2 pixels narrower than the image, as a few real GTA5 frames do."""
    rng = _rng(seed)
    tree = Tree(root=root, frames=pd.DataFrame())
    rows = []
    for frame in frames:
        image, label = L.gta_image(frame), L.gta_label(frame)
        tree.images[image] = random_rgb(rng)
        write_rgb(root / image, tree.images[image])
        raw = cityscapes_raw_label(rng)
        if frame in mismatched:
            raw = raw[:, :-2]
        write_palette_png(root / label, raw, CS_LABELID_PALETTE)
        tree.raw_labels[label] = raw
        rows.append(dict(sequence=f"{frame:05d}", frame=frame, image=image, raw_label=label))
    tree.frames = _expected(rows)
    return tree


# --- footage ---------------------------------------------------------------------------------------
def video_frames(count: int, *, size: tuple[int, int] = (HEIGHT, WIDTH)) -> list[np.ndarray]:
    """Smooth frames that survive lossy coding: a flat colour per frame plus a horizontal ramp."""
    ramp = np.linspace(0, 60, size[1], dtype=np.float32)[None, :, None]
    frames = []
    for i in range(count):
        colour = np.array([(40 + 25 * i) % 200, 120, (200 - 20 * i) % 200], np.float32)
        frames.append(np.clip(colour + ramp, 0, 255).astype(np.uint8).repeat(size[0], axis=0))
    return frames


def make_video(path: Path, frames: int | Sequence[np.ndarray], *, fps: float = 10.0) -> list[np.ndarray]:
    """An mp4 written by OpenCV ('mp4v'); returns the RGB frames written."""
    frames = video_frames(frames) if isinstance(frames, int) else list(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return frames


def make_frame_folder(root: Path, *, sequences: dict[str, int], ext: str = "png", seed: int = 0) -> dict[str, list[str]]:
    """``root/<sequence>/frame<i>.<ext>`` (unpadded numbers, so natural sort matters); returns the
    expected order of file paths (relative to ``root``) per sequence."""
    rng = _rng(seed)
    written = {}
    for name, count in sequences.items():
        written[name] = [f"{name}/frame{i}.{ext}" for i in range(count)]
        for rel in written[name]:
            write_rgb(root / rel, random_rgb(rng))
    return written

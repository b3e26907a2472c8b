"""VIPER (source video): ``{split}/img/{seq}/{seq}_{frame}.jpg|png`` and palette labels in ``{split}/cls``.

Labels are palette PNGs whose palette *index* is the VIPER id; RGB-coloured copies are mapped back
through ``classes.VIPER_PALETTE``. The common split labels every 10th frame (``label_step=10``).
DA-VSN ignores the ego vehicle: the car component touching the bottom-centre pixel (``ego_mask``).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipa_video.data.classes import VIPER_CAR_ID, VIPER_PALETTE
from pipa_video.data.index import DatasetError
from pipa_video.data.sources.base import (
    Layout,
    INDEX_MODES, LayoutOption, read_pil, rel, split_option,
)
from pipa_video.data.sources.layouts import (
    VIPER_CLS_DIR, VIPER_IMG_DIR, VIPER_NAME_RE, viper_image, viper_label,
)

NAME = "viper"
ID_SPACE = "viper"
EXPECTED = ("VIPER/<split>/img/<seq>/<seq>_<frame>.jpg (or .png) with palette labels "
            "VIPER/<split>/cls/<seq>/<seq>_<frame>.png; ROOT is the VIPER folder")
RGB_MODES = ("RGB", "RGBA")


def check_root(root: Path, *, split: str, label_step: int, ego_mask: bool) -> None:
    if label_step < 1:
        raise DatasetError(f"label_step must be >= 1, got {label_step}")
    for sub in (VIPER_IMG_DIR, VIPER_CLS_DIR):
        folder = root / split / sub
        if not folder.is_dir():
            hint = ""
            if (root / "VIPER" / split / sub).is_dir():
                hint = f" (found {root / 'VIPER'}: pass that folder as ROOT)"
            raise DatasetError(f"{folder} not found: expected {EXPECTED}{hint}")


def scan(root: Path, *, split: str, label_step: int, ego_mask: bool) -> pd.DataFrame:
    rows = []
    img_root = root / split / VIPER_IMG_DIR
    for seq_dir in sorted(p for p in img_root.iterdir() if p.is_dir()):
        cls_dir = root / split / VIPER_CLS_DIR / seq_dir.name
        label_names = {p.name for p in cls_dir.iterdir()} if cls_dir.is_dir() else set()
        for path in sorted(seq_dir.iterdir()):
            match = VIPER_NAME_RE.match(path.name)
            if match is None:
                continue  # stray files (thumbnails, .DS_Store) are not frames
            seq, frame, ext = int(match["seq"]), int(match["frame"]), match["ext"]
            image = viper_image(split, seq, frame, ext)
            if image != rel(path, root):
                raise DatasetError(f"{path}: frame of sequence {seq:03d} filed under {seq_dir}; "
                                   f"expected {EXPECTED}")
            label = viper_label(split, seq, frame)
            labelled = frame % label_step == 0 and Path(label).name in label_names
            rows.append(dict(sequence=f"{seq:03d}", frame=frame, image=image,
                             raw_label=label if labelled else ""))
    return pd.DataFrame(rows)


# RGB colour -> VIPER id. Van (25) and train (29) share a colour; the first (van) wins, and both
# lie outside every benchmark class set, so the choice never changes a train id.
_COLOUR_CODES, _FIRST_ID = np.unique(
    [(r << 16) | (g << 8) | b for r, g, b in VIPER_PALETTE], return_index=True
)


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def rgb_to_viper_ids(rgb: np.ndarray, *, path: Path | str = "<array>") -> np.ndarray:
    """Invert the VIPER palette: (H, W, 3) RGB colours -> (H, W) uint8 VIPER ids."""
    codes = _colour_codes(rgb[..., :3])
    pos = np.clip(np.searchsorted(_COLOUR_CODES, codes), 0, len(_COLOUR_CODES) - 1)
    known = _COLOUR_CODES[pos] == codes
    if not known.all():
        bad = np.unique(codes[~known])[:5]
        colours = [((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255) for c in bad]
        raise DatasetError(f"{path}: RGB label colours {colours} are not in the VIPER palette "
                           f"(classes.VIPER_PALETTE)")
    return _FIRST_ID[pos].astype(np.uint8)


def read_raw_label(path: Path) -> np.ndarray:
    """VIPER ids (H, W) uint8: palette indices as stored, or inverted colours of an RGB copy."""
    mode, array = read_pil(path, what="VIPER label")
    if mode in INDEX_MODES:
        return array.astype(np.uint8, copy=False)
    if mode in RGB_MODES:
        return rgb_to_viper_ids(array, path=path)
    raise DatasetError(f"{path}: VIPER labels are palette (or RGB-coloured) PNGs, got PIL mode {mode!r}")


def ego_vehicle_mask(raw: np.ndarray) -> np.ndarray | None:
    """The car component (8-connected) containing the bottom-centre pixel, or None (DA-VSN)."""
    bottom_centre = (raw.shape[0] - 1, raw.shape[1] // 2)
    if raw[bottom_centre] != VIPER_CAR_ID:
        return None
    _, components = cv2.connectedComponents((raw == VIPER_CAR_ID).astype(np.uint8), connectivity=8)
    return components == components[bottom_centre]


def ignore_mask(raw: np.ndarray, *, split: str, label_step: int, ego_mask: bool) -> np.ndarray | None:
    return ego_vehicle_mask(raw) if ego_mask else None


LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    ignore_mask_fn=ignore_mask,
    options=(
        split_option("VIPER split folder (train, val, test)"),
        LayoutOption("label_step", int, 10,
                     "label frames whose number is a multiple of this (10: the common split; "
                     "1: every frame that has a cls file)"),
        LayoutOption("ego_mask", bool, True,
                     "set the ego-vehicle car component touching the bottom centre to ignore (DA-VSN)"),
    ),
    default_class_set="viper15",
    doc="VIPER video frames with palette labels (source domain).",
)

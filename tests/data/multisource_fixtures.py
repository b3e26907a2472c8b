"""GTA5, SYNTHIA-RAND-CITYSCAPES and Cityscapes trees in their published layouts for multi-source tests,
indexed by the real prepare tool for ``cityscapes19``.

Frames are 128x64 (64x64 crops never pad). Each column band of a frame holds one raw label id, and the
image's red channel names the band (``RED``), so a test finds, after any crop and flip, the pixels a band
became: e.g. where SYNTHIA's void band (a truck SYNTHIA leaves unlabelled) went and what label it got.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipa_video.data.prepare import prepare
from pipa_video.data.sources import layouts as L
from tests.data.fixtures import (CS_LABELID_PALETTE, make_cityscapes_tree, write_palette_png, write_rgb,
                                 write_synthia_label)

W, H = 128, 64
CROP = (64, 64)
# Red value of each band's pixels; every band is W // 4 = 32 columns wide.
RED = dict(gta_truck=40, gta_road=80, gta_train=120, syn_void=160, syn_lane=180, syn_road=200, syn_bicycle=240)
# Raw ids: Cityscapes labelIds (GTA5) 27 truck, 7 road, 31 train;
# SYNTHIA ids 0 void, 22 lane marking, 3 road, 11 bicycle.
GTA_BANDS = (("gta_truck", 27), ("gta_road", 7), ("gta_road", 7), ("gta_road", 7))
GTA_RARE_BANDS = (("gta_truck", 27), ("gta_road", 7), ("gta_road", 7), ("gta_train", 31))
SYN_BANDS = (("syn_void", 0), ("syn_lane", 22), ("syn_road", 3), ("syn_road", 3))
SYN_RARE_BANDS = (("syn_void", 0), ("syn_lane", 22), ("syn_road", 3), ("syn_bicycle", 11))
TRAIN_IDS = dict(road=0, truck=14, train=16, bicycle=18)


def _banded(bands: Sequence[tuple[str, int]], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB (H, W, 3), raw ids (H, W)): four vertical bands; green/blue random texture."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    raw = np.zeros((H, W), np.uint8)
    step = W // len(bands)
    for i, (name, raw_id) in enumerate(bands):
        rgb[:, i * step:(i + 1) * step, 0] = RED[name]
        raw[:, i * step:(i + 1) * step] = raw_id
    return rgb, raw


def make_gta(root: Path, *, frames: Sequence[int] = range(1, 7), rare: Sequence[int] = (3,)) -> Path:
    """GTA5 (``images/``, palette ``labels/`` of labelIds); frames in ``rare`` hold a train band."""
    for frame in frames:
        rgb, raw = _banded(GTA_RARE_BANDS if frame in rare else GTA_BANDS, seed=frame)
        write_rgb(root / L.gta_image(frame), rgb)
        write_palette_png(root / L.gta_label(frame), raw, CS_LABELID_PALETTE)
    return root


def make_synthia(root: Path, *, frames: Sequence[int] = range(0, 4), rare: Sequence[int] = (2,),
                 truck_frame: int | None = None) -> Path:
    """SYNTHIA-RAND-CITYSCAPES (``RGB/``, 16-bit ``GT/LABELS/``); frames in ``rare`` hold a bicycle band.
    ``truck_frame`` labels its road bands truck (id 18), which the published SYNTHIA never does."""
    for frame in frames:
        rgb, raw = _banded(SYN_RARE_BANDS if frame in rare else SYN_BANDS, seed=100 + frame)
        if frame == truck_frame:
            raw[raw == 3] = 18
        write_rgb(root / L.synthia_image(frame), rgb)
        write_synthia_label(root / L.synthia_label(frame), raw, np.random.default_rng(frame))
    return root


def prepare_two_sources(tmp: Path, **synthia) -> dict[str, str]:
    """Index directories ``gta``, ``synthia`` and ``cs`` (Cityscapes train, the target), all ``cityscapes19``."""
    gta = prepare("gta", make_gta(tmp / "gta"), tmp / "index" / "gta", quiet=True)
    syn = prepare("synthia", make_synthia(tmp / "synthia", **synthia), tmp / "index" / "synthia", quiet=True)
    make_cityscapes_tree(tmp / "cityscapes", split="train")
    cs = prepare("cityscapes", tmp / "cityscapes", tmp / "index" / "cs", split="train", quiet=True)
    return dict(gta=str(gta), synthia=str(syn), cs=str(cs))


def two_source_data(indexes: dict[str, str], *, weights: tuple[float, float] = (0.5, 0.5), rcs: bool = False) -> dict:
    """The ``data`` section of a GTA5 + SYNTHIA -> Cityscapes run on these trees (no padding anywhere)."""
    common = dict(crop_size=CROP, flip_prob=0.5, rcs=dict(enabled=rcs, temperature=0.01, min_pixels=100,
                                                         min_crop_ratio=0.5))
    return dict(
        source=dict(index=indexes["gta"], **common),
        sources=[dict(index=indexes["gta"], weight=weights[0]), dict(index=indexes["synthia"], weight=weights[1])],
        target=dict(index=indexes["cs"], keys="all", resize=(W, H), crop_size=CROP, flip_prob=0.5),
        source_batch_size=2, target_batch_size=2, num_workers=0,
    )


def red_values(img: np.ndarray, mean: float = 123.675, std: float = 58.395) -> np.ndarray:
    """The stored red channel back from a normalised (3, h, w) image (exact: crops and flips only)."""
    return np.rint(img[0] * std + mean).astype(np.int64)

"""Path templates of every real on-disk layout (datasets.md), shared by readers, writers and tests.

Readers parse these names, the synthetic benchmark and the test fixtures write them, so a layout is
spelled out exactly once.
"""
from __future__ import annotations

import re

# VIPER: {split}/img/{seq:03d}/{seq:03d}_{frame:05d}.jpg|png ; {split}/cls/{seq:03d}/{seq:03d}_{frame:05d}.png
VIPER_IMG_DIR = "img"
VIPER_CLS_DIR = "cls"
VIPER_NAME_RE = re.compile(r"^(?P<seq>\d{3})_(?P<frame>\d{5})\.(?P<ext>jpg|jpeg|png)$", re.IGNORECASE)


def viper_image(split: str, seq: int, frame: int, ext: str = "jpg") -> str:
    return f"{split}/{VIPER_IMG_DIR}/{seq:03d}/{seq:03d}_{frame:05d}.{ext}"


def viper_label(split: str, seq: int, frame: int) -> str:
    return f"{split}/{VIPER_CLS_DIR}/{seq:03d}/{seq:03d}_{frame:05d}.png"


# Cityscapes-Seq and Cityscapes share the file naming {city}_{seq:06d}_{frame:06d}_<suffix>.png
CS_SEQ_IMG_DIR = "leftImg8bit_sequence"
CS_IMG_DIR = "leftImg8bit"
CS_GT_DIR = "gtFine"
CS_IMG_SUFFIX = "_leftImg8bit.png"
CS_LABEL_SUFFIX = "_gtFine_labelIds.png"
CS_NAME_RE = re.compile(r"^(?P<city>[a-z_]+?)_(?P<seq>\d{6})_(?P<frame>\d{6})_(?P<suffix>.+)$")


def cityscapes_stem(city: str, seq: int, frame: int) -> str:
    return f"{city}_{seq:06d}_{frame:06d}"


def cityscapes_seq_image(split: str, city: str, seq: int, frame: int) -> str:
    return f"{CS_SEQ_IMG_DIR}/{split}/{city}/{cityscapes_stem(city, seq, frame)}{CS_IMG_SUFFIX}"


def cityscapes_image(split: str, city: str, seq: int, frame: int) -> str:
    return f"{CS_IMG_DIR}/{split}/{city}/{cityscapes_stem(city, seq, frame)}{CS_IMG_SUFFIX}"


def cityscapes_label(split: str, city: str, seq: int, frame: int) -> str:
    return f"{CS_GT_DIR}/{split}/{city}/{cityscapes_stem(city, seq, frame)}{CS_LABEL_SUFFIX}"


# Cityscapes-Seq snippets: 30 frames, the annotated one is the 20th (-19 .. +10 around it).
CS_SEQ_BEFORE = 19
CS_SEQ_AFTER = 10

# SYNTHIA-Seq: {sequence}/RGB/Stereo_Left/Omni_F/{frame:06d}.png ; GT/LABELS/Stereo_Left/Omni_F/...
SYNTHIA_SEQ_CAMERA = "Stereo_Left/Omni_F"


def synthia_seq_image(sequence: str, frame: int, camera: str = SYNTHIA_SEQ_CAMERA) -> str:
    return f"{sequence}/RGB/{camera}/{frame:06d}.png"


def synthia_seq_label(sequence: str, frame: int, camera: str = SYNTHIA_SEQ_CAMERA) -> str:
    return f"{sequence}/GT/LABELS/{camera}/{frame:06d}.png"


# GTA5: images/{id:05d}.png, labels/{id:05d}.png (Cityscapes labelIds)
def gta_image(frame: int) -> str:
    return f"images/{frame:05d}.png"


def gta_label(frame: int) -> str:
    return f"labels/{frame:05d}.png"


# SYNTHIA-RAND-CITYSCAPES: RGB/{id:07d}.png, GT/LABELS/{id:07d}.png (16-bit, class in R)
def synthia_image(frame: int) -> str:
    return f"RGB/{frame:07d}.png"


def synthia_label(frame: int) -> str:
    return f"GT/LABELS/{frame:07d}.png"


# ACDC and Dark Zurich (ETH Zurich's releases) share the naming {sequence}_frame_{frame:06d}_<suffix>:
# images rgb_anon/..._rgb_anon.png, labels gt/..._gt_labelTrainIds.png or ..._gt_labelIds.png.
ADVERSE_IMG_DIR = "rgb_anon"
ADVERSE_GT_DIR = "gt"
ADVERSE_IMG_SUFFIX = "_rgb_anon.png"
ADVERSE_TRAINIDS_SUFFIX = "_gt_labelTrainIds.png"
ADVERSE_LABELIDS_SUFFIX = "_gt_labelIds.png"
ADVERSE_LABEL_SUFFIXES = (ADVERSE_TRAINIDS_SUFFIX, ADVERSE_LABELIDS_SUFFIX)  # preference order
# Reference images (_rgb_ref_anon, _ref_rgb_anon) do not match: they are not frames of a split.
ADVERSE_NAME_RE = re.compile(r"^(?P<seq>[A-Za-z0-9]+)_frame_(?P<frame>\d{6})_rgb_anon\.png$")
REF_SUFFIX = "_ref"  # rgb_anon/{condition}/{split}_ref/ (ACDC), rgb_anon/{split}_ref/ (Dark Zurich)

ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
ACDC_UNKNOWN_CONDITION = "unknown"  # HRDA's flattened layout drops the condition folders
DARK_ZURICH_TIMES = ("day", "twilight", "night")


def adverse_stem(seq: str, frame: int) -> str:
    return f"{seq}_frame_{frame:06d}"


def acdc_image(condition: str, split: str, seq: str, frame: int) -> str:
    return f"{ADVERSE_IMG_DIR}/{condition}/{split}/{seq}/{adverse_stem(seq, frame)}{ADVERSE_IMG_SUFFIX}"


def acdc_ref_image(condition: str, split: str, seq: str, frame: int) -> str:
    return f"{ADVERSE_IMG_DIR}/{condition}/{split}{REF_SUFFIX}/{seq}/{adverse_stem(seq, frame)}_rgb_ref_anon.png"


def acdc_label(condition: str, split: str, seq: str, frame: int, suffix: str = ADVERSE_TRAINIDS_SUFFIX) -> str:
    return f"{ADVERSE_GT_DIR}/{condition}/{split}/{seq}/{adverse_stem(seq, frame)}{suffix}"


# HRDA's README: rsync rgb_anon/*/{split}/*/* into rgb_anon/{split}/ and the labelTrainIds into gt/{split}/.
def acdc_flat_image(split: str, seq: str, frame: int) -> str:
    return f"{ADVERSE_IMG_DIR}/{split}/{adverse_stem(seq, frame)}{ADVERSE_IMG_SUFFIX}"


def acdc_flat_label(split: str, seq: str, frame: int, suffix: str = ADVERSE_TRAINIDS_SUFFIX) -> str:
    return f"{ADVERSE_GT_DIR}/{split}/{adverse_stem(seq, frame)}{suffix}"


def dark_zurich_image(split: str, time: str, seq: str, frame: int) -> str:
    return f"{ADVERSE_IMG_DIR}/{split}/{time}/{seq}/{adverse_stem(seq, frame)}{ADVERSE_IMG_SUFFIX}"


def dark_zurich_ref_image(split: str, seq: str, frame: int) -> str:
    return f"{ADVERSE_IMG_DIR}/{split}{REF_SUFFIX}/day/{seq}_ref/{adverse_stem(seq, frame)}_ref_rgb_anon.png"


def dark_zurich_label(split: str, time: str, seq: str, frame: int, suffix: str = ADVERSE_TRAINIDS_SUFFIX) -> str:
    return f"{ADVERSE_GT_DIR}/{split}/{time}/{seq}/{adverse_stem(seq, frame)}{suffix}"


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

"""One reader per on-disk dataset layout, by name: ``LAYOUTS["viper"].scan(root, split="train")``.

Each module (viper, cityscapes_seq, cityscapes, synthia_seq, synthia, gta, acdc, dark_zurich,
video_file, frame_folder) exposes a ``LAYOUT``: ``check_root``, ``scan`` -> DataFrame ``sequence, frame, image,
raw_label``, ``read_raw_label`` and its ``id_space``. ``pipa_video.data.prepare`` turns a scan into
a frame index (``index.csv``, ``meta.json``, ``labels/``).
"""
from __future__ import annotations

from pipa_video.data.sources import (
    acdc, cityscapes, cityscapes_seq, dark_zurich, frame_folder, gta, synthia, synthia_seq, video_file, viper,
)
from pipa_video.data.sources.base import SCAN_COLUMNS, Layout, LayoutOption, SizeMismatch

LAYOUTS: dict[str, Layout] = {
    m.LAYOUT.name: m.LAYOUT
    for m in (viper, cityscapes_seq, cityscapes, synthia_seq, synthia, gta, acdc, dark_zurich, video_file,
              frame_folder)
}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown dataset layout {name!r}; expected one of {sorted(LAYOUTS)}") from None


__all__ = ["LAYOUTS", "SCAN_COLUMNS", "Layout", "LayoutOption", "SizeMismatch", "get_layout"]

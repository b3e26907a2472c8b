"""SYNTHIA-RAND-CITYSCAPES (source images): ``RGB/{id:07d}.png`` + 16-bit ``GT/LABELS/{id:07d}.png``.

Every image is its own one-frame sequence; labels are read like SYNTHIA-Seq's (class in R).
"""
from __future__ import annotations

from pipa_video.data.sources import synthia_seq
from pipa_video.data.sources.base import Layout, NumberedPairs
from pipa_video.data.sources.layouts import synthia_image, synthia_label

NAME = "synthia"
ID_SPACE = "synthia_rand"
EXPECTED = "ROOT/RGB/<id:07d>.png with ROOT/GT/LABELS/<id:07d>.png (16-bit, class in R)"

PAIRS = NumberedPairs(image_fn=synthia_image, label_fn=synthia_label, digits=7, expected=EXPECTED)
check_root, scan = PAIRS.check_root, PAIRS.scan
read_raw_label = synthia_seq.read_raw_label  # the same 16-bit labels, class in R

LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    default_class_set="cityscapes19",
    doc="SYNTHIA-RAND-CITYSCAPES images with 16-bit labels (source domain), one-frame clips.",
)

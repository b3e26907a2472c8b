"""GTA5 (source images): ``images/{id:05d}.png`` + ``labels/{id:05d}.png`` in Cityscapes labelIds.

Labels are palette PNGs whose index is the labelId (read with PIL: OpenCV would expand the palette).
A few real GTA5 frames have an image and a label of different sizes: prepare warns, names them and
leaves them out (``SizeMismatch.SKIP``). Every image is its own one-frame sequence.
"""
from __future__ import annotations

from pipa_video.data.sources import cityscapes_seq
from pipa_video.data.sources.base import Layout, NumberedPairs, SizeMismatch
from pipa_video.data.sources.layouts import gta_image, gta_label

NAME = "gta"
ID_SPACE = "cityscapes"
EXPECTED = "ROOT/images/<id:05d>.png with ROOT/labels/<id:05d>.png (Cityscapes labelIds)"

PAIRS = NumberedPairs(image_fn=gta_image, label_fn=gta_label, digits=5, expected=EXPECTED)
check_root, scan = PAIRS.check_root, PAIRS.scan
read_raw_label = cityscapes_seq.read_raw_label  # the same Cityscapes labelIds

LAYOUT = Layout(
    name=NAME,
    expected=EXPECTED,
    check_root_fn=check_root,
    scan_fn=scan,
    id_space=ID_SPACE,
    read_raw_label=read_raw_label,
    size_mismatch=SizeMismatch.SKIP,
    default_class_set="cityscapes19",
    doc="GTA5 images with Cityscapes labelIds (source domain), one-frame clips.",
)

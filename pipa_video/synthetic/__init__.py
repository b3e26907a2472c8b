"""The embedded synthetic benchmark: procedural street video in two styles, in the real layouts.

``make_synthetic(root, seed=0)`` (command line: ``data_tools/make_synthetic.py``) writes
- ``root/source``: the VIPER layout (``{train,val}/img`` frames, ``cls`` palette PNGs of VIPER ids),
  rendered in a saturated, sunny, crisp "game" style;
- ``root/target``: the Cityscapes-Seq layout (30-frame ``leftImg8bit_sequence`` snippets, ``gtFine``
  labelIds for the annotated frame only, train/val/test), rendered in an overcast, soft, noisy
  "camera" style with a different palette, vignetting and an ego-vehicle bonnet;
- ``root/SYNTHETIC_INFO.json`` last, so an interrupted run is detectable (``is_complete``).

Both domains come from one scene generator: a street with a vanishing point, sidewalks, terrain,
buildings with windows, trees, hedges, poles with signs and traffic lights, fences, and cars and
persons that move while the camera drives forward and pans. Only the look differs, so a model
trained on the source loses accuracy on the target while the target stays learnable from shape and
layout. Everything is deterministic in the seed: the same seed gives byte-identical files (with the
same NumPy, OpenCV and Pillow builds), whatever the number of worker processes.

The modules, from the bottom up: ``spec`` (what to generate: splits, cities, scene classes and
their raw ids, sizes), ``style`` (the two looks), ``scene`` (a street's cross-section and the
primitives of a scene), ``camera`` (trajectory and projection), ``traffic`` and ``street`` (what
populates a street), ``raster`` and ``render`` (one frame), ``plan`` (the jobs and their random
streams), ``writers`` (the VIPER and Cityscapes-Seq files, atomic) and ``api`` (the whole benchmark).
The package reads ``pipa_video.data`` (class tables, layouts); ``pipa_video.data`` never imports it.
"""
from pipa_video.synthetic.api import (
    GENERATOR_VERSION, IN_PROGRESS_FILE, INFO_FILE, ensure_synthetic, is_complete, make_synthetic, read_info,
)
from pipa_video.synthetic.spec import (
    CITYSCAPES_LABELIDS, SOURCE_DIR, SOURCE_SPLITS, TARGET_CITIES, TARGET_DIR, TARGET_SPLITS, VIPER_IDS, Domain,
    SceneClass, SyntheticSpec, raw_id_table,
)
from pipa_video.synthetic.style import SOURCE_STYLE, STYLES, TARGET_STYLE, Style

__all__ = [
    "CITYSCAPES_LABELIDS", "GENERATOR_VERSION", "INFO_FILE", "IN_PROGRESS_FILE", "SOURCE_DIR", "SOURCE_SPLITS",
    "SOURCE_STYLE", "STYLES", "TARGET_CITIES", "TARGET_DIR", "TARGET_SPLITS", "TARGET_STYLE", "VIPER_IDS",
    "Domain", "SceneClass", "Style", "SyntheticSpec", "ensure_synthetic", "is_complete", "make_synthetic",
    "raw_id_table", "read_info",
]

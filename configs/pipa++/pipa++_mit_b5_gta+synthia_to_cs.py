# PiPa++ on GTA5 + SYNTHIA -> Cityscapes (multi-source), MiT-B5 + DAFormer decoder, paper settings. The
# contrasts work on the mixed source batch: the memory bank's queue of a class is filled from the frames of
# the sources that annotate it. HRDA + MIC variants: docs/recipes.md, "Multi-source".
_base_ = [
    '../_base_/datasets/gta+synthia_to_cs.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/pipa++.py',
]

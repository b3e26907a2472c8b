# PiPa++ on DAFormer, MiT-B5, Cityscapes -> Dark Zurich: DAFormer's cross-weather recipe
# (docs/recipes.md, "Cross-weather") plus pixel and patch contrast. The target images are single
# frames (offsets = []), so the temporal term does not apply. On HRDA + MIC:
# ./pipa++_hrda_mic_mit_b5_cs_to_darkzurich.py.
_base_ = [
    '../_base_/datasets/cs_to_darkzurich.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/pipa++.py',
]
uda = dict(pseudo_ignore_top=15, pseudo_ignore_bottom=120)  # DAFormer's plcrop=True, as the baseline

# DAFormer self-training, MiT-B5 + DAFormer decoder, Cityscapes -> ACDC: DAFormer's
# experiments.py id 8 (dacs_a999_fdthings, rcs_T=0.01, plcrop=True, 40k iterations, batch 2 + 2).
# Values and sources: docs/recipes.md, "Cross-weather".
_base_ = [
    '../_base_/datasets/cs_to_acdc.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/dacs.py',
]
# plcrop=True in DAFormer's id 8: pseudo-label weight 0 on the top 15 and bottom 120 rows of the
# target crop. (HRDA and MIC set plcrop=False for ACDC and Dark Zurich, which have no rectification
# artifacts; this config keeps DAFormer's published setting.)
uda = dict(pseudo_ignore_top=15, pseudo_ignore_bottom=120)

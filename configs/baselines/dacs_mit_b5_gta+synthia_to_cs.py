# DAFormer self-training baseline, MiT-B5, GTA5 + SYNTHIA -> Cityscapes (multi-source): DAFormer's settings
# (40k iterations, 512x512 crops, batch 2 source + 2 target clips, the sources drawn per slot, 0.5 / 0.5).
# HRDA + MIC variants of this benchmark are not part of this config family (docs/recipes.md, "Multi-source").
_base_ = [
    '../_base_/datasets/gta+synthia_to_cs.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/dacs.py',
]

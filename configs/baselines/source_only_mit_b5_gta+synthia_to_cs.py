# Source-only baseline, MiT-B5, GTA5 + SYNTHIA -> Cityscapes (multi-source): paper settings
# (40k iterations, 512x512 crops, batch 2 source clips drawn from both sources, 0.5 / 0.5).
_base_ = [
    '../_base_/datasets/gta+synthia_to_cs.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/source_only.py',
]
uda = dict(method='source_only')  # supervised source loss only: the lower baseline

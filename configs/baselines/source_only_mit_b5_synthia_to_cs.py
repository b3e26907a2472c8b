# Source-only baseline, MiT-B5, synthia to cs: paper settings
# (40k iterations, 512x512 crops, batch 2 source + 2 target clips).
_base_ = [
    '../_base_/datasets/synthia_to_cs.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/source_only.py',
]

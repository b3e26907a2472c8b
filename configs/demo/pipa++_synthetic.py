# PiPa++ demo on the synthetic benchmark, tiny model, CPU.
_base_ = [
    '../_base_/datasets/synthetic_demo.py',
    '../_base_/models/mit_demo.py',
    '../_base_/schedules/demo.py',
    '../_base_/uda/pipa++.py',
]
uda = dict(
    pixel_contrast=dict(bank_size=100, anchors_per_class=32),  # fewer pixels per 128x128 crop
    patch_contrast=dict(num_anchors=256),
    temporal_contrast=dict(num_anchors=256),
)

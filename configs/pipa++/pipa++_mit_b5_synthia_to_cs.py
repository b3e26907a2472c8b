# PiPa++ on synthia to cs, MiT-B5 + DAFormer decoder, paper settings.
_base_ = [
    '../_base_/datasets/synthia_to_cs.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/pipa++.py',
]

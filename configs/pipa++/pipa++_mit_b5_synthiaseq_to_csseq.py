# PiPa++ on synthiaseq to csseq, MiT-B5 + DAFormer decoder, paper settings.
_base_ = [
    '../_base_/datasets/synthiaseq_to_csseq.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/pipa++.py',
]

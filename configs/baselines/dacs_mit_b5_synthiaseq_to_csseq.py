# DAFormer self-training baseline, MiT-B5, synthiaseq to csseq: paper settings
# (40k iterations, 512x512 crops, batch 2 source + 2 target clips).
_base_ = [
    '../_base_/datasets/synthiaseq_to_csseq.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/dacs.py',
]

# PiPa++ on HRDA + MIC, MiT-B5 + DAFormer decoder, viper to csseq: the data, model, schedule and MIC term of
# ../mic/mic_hrda_mit_b5_viper_to_csseq.py with the PiPa++ contrasts of ../_base_/uda/pipa++.py (the paper's
# values).
# tests/test_recipes.py checks that the two configs differ only in the contrasts. docs/recipes.md lists
# what PiPa's public HRDA code does differently (patch weight 0.01, 60k iterations, no memory bank).
_base_ = [
    '../_base_/datasets/viper_to_csseq_hr.py',
    '../_base_/models/mit_b5_hrda_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/pipa++.py',
]
uda = dict(
    pseudo_ignore_top=0,  # HRDA: crop-aware margins (data.target.pseudo_margins) instead of on-crop rows
    pseudo_ignore_bottom=0,
    mic=dict(weight=1.0),  # MIC as ../mic/mic_hrda_mit_b5_viper_to_csseq.py
)

# HRDA, MiT-B5 + DAFormer decoder, cs to darkzurich: HRDA experiments.py id 49 / MIC seg/experiments.py id
# 80 without masking.
# Values and sources: docs/recipes.md (HRDA and MIC families).
_base_ = [
    '../_base_/datasets/cs_to_darkzurich_hr.py',
    '../_base_/models/mit_b5_hrda_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/dacs.py',
]
# HRDA drops DAFormer's on-crop margins (15 / 120 rows): it masks crop-aware margins in the data pipeline
# (data.target.pseudo_margins) and asserts that the two are not combined.
uda = dict(pseudo_ignore_top=0, pseudo_ignore_bottom=0)

# HRDA, MiT-B5 + DAFormer decoder, gta to cs: HRDA configs/hrda/gtaHR2csHR_hrda.py.
# Values and sources: docs/recipes.md (HRDA and MIC families).
_base_ = [
    '../_base_/datasets/gta_to_cs_hr.py',
    '../_base_/models/mit_b5_hrda_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/dacs.py',
]
# HRDA drops DAFormer's on-crop margins (15 / 120 rows): it masks crop-aware margins in the data pipeline
# (data.target.pseudo_margins) and asserts that the two are not combined.
uda = dict(pseudo_ignore_top=0, pseudo_ignore_bottom=0)

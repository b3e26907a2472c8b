# HRDA, MiT-B5 + DAFormer decoder, viper to csseq: the HRDA baseline of Kareer et al. (UnifiedVideoDA
# configs/mic/viperHR2csHR_mic_hrda.py with --no-masking).
# Values and sources: docs/recipes.md (HRDA and MIC families).
_base_ = [
    '../_base_/datasets/viper_to_csseq_hr.py',
    '../_base_/models/mit_b5_hrda_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/dacs.py',
]
# HRDA drops DAFormer's on-crop margins (15 / 120 rows): it masks crop-aware margins in the data pipeline
# (data.target.pseudo_margins) and asserts that the two are not combined.
uda = dict(pseudo_ignore_top=0, pseudo_ignore_bottom=0)
# schedule.iters=40000 (iter_40k): HRDA's and MIC's schedule, and the '_40k' of UnifiedVideoDA's name_opt; the
# stored viperHR2csHR_mic_hrda.py of that repository sets max_iters=15000 (schedule.iters=15000 gives that).

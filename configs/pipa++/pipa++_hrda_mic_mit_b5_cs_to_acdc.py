# PiPa++ on HRDA + MIC, MiT-B5 + DAFormer decoder, Cityscapes -> ACDC: the data, model, schedule and MIC
# term of ../mic/mic_hrda_mit_b5_cs_to_acdc.py with the PiPa++ contrasts of ../_base_/uda/pipa++.py (the
# paper's values). No public PiPa code covers this pair (docs/recipes.md, "Cross-weather"). The target
# images are single frames (offsets = []), so the temporal term does not apply.
# tests/test_recipes.py checks that this config and the MIC one differ only in the contrasts.
_base_ = [
    '../_base_/datasets/cs_to_acdc_hr.py',
    '../_base_/models/mit_b5_hrda_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/pipa++.py',
]
uda = dict(
    pseudo_ignore_top=0,  # HRDA and MIC: plcrop=False for ACDC / Dark Zurich (no rectification artefacts)
    pseudo_ignore_bottom=0,
    mic=dict(
        weight=1.0,  # as ../mic/mic_hrda_mit_b5_cs_to_acdc.py: mask_mode='separate'
        images='source_and_target',
        color_augmentation=False,
    ),
)

# MIC on HRDA, MiT-B5 + DAFormer decoder, cs to acdc: lhoyer/MIC seg/experiments.py id 80
# (mask_mode='separate'). Values and sources: docs/recipes.md, "Cross-weather".
_base_ = ['../hrda/hrda_mit_b5_cs_to_acdc.py']
uda = dict(
    mic=dict(
        weight=1.0,  # mask_lambda=1; block 64 px, ratio 0.7 (defaults)
        # mask_mode='separate' for ACDC and Dark Zurich: one source image with its labels and one target image
        # with its pseudo-labels, masked without colour augmentation.
        images='source_and_target',
        color_augmentation=False,
    ),
)

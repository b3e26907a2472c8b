# MIC on HRDA, MiT-B5 + DAFormer decoder, viper to csseq: lhoyer/MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py
# (mask_mode='separatetrgaug'). Values and sources: docs/recipes.md (HRDA and MIC families).
_base_ = ['../hrda/hrda_mit_b5_viper_to_csseq.py']
uda = dict(
    # mask_lambda=1; mask_generator block 64 px, ratio 0.7, colour-augmented target images, the host's
    # pseudo-labels and teacher (mask_alpha / mask_pseudo_threshold 'same'): the uda.mic defaults.
    mic=dict(weight=1.0),
)

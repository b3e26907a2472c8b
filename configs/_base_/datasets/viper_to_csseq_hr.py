# VIPER -> Cityscapes-Seq at HRDA's full resolution, as the HRDA + MIC video baseline trains it (Kareer et
# al., TMLR 2024: SimarKareer/UnifiedVideoDA configs/_base_/datasets/uda_viper_CSSeq.py and
# configs/mic/viperHR2csHR_mic_hrda.py; docs/recipes.md). Clips (t, t-1) as ./viper_to_csseq.py.
_base_ = ['./viper_to_csseq.py']
data = dict(
    source=dict(
        resize=(2560, 1440),  # Resize(img_scale=(2560, 1440)): VIPER's 1920x1080 -> 2560x1440
        crop_size=(1024, 1024),
        rcs=dict(min_crop_ratio=2.0),  # rare_class_sampling min_crop_ratio=2.0
    ),
    target=dict(
        resize=(2048, 1024),  # Resize(img_scale=(2048, 1024))
        crop_size=(1024, 1024),
        pseudo_margins=(30, 240, 30, 30),  # crop_pseudo_margins=[30, 240, 30, 30]
    ),
)
evaluation = dict(resize=(2048, 1024))  # test Resize(img_scale=(2048, 1024), keep_ratio=True), HRDA slide

# Cityscapes -> ACDC at HRDA's full resolution: lhoyer/MIC seg/configs/_base_/datasets/
# uda_cityscapesHR_to_acdcHR_1024x1024.py (HRDA's file of the same name has the same pipelines) and MIC
# seg/experiments.py id 80 (rcs_T=0.01, rcs_min_crop=2.0, plcrop=False). docs/recipes.md, "Cross-weather".
_base_ = ['./cs_to_acdc.py']
data = dict(
    source=dict(
        resize=(2048, 1024),  # Resize(img_scale=(2048, 1024)): Cityscapes' full resolution
        crop_size=(1024, 1024),  # RandomCrop (1024, 1024), cat_max_ratio=0.75 (from ./cs_to_acdc.py)
        rcs=dict(min_crop_ratio=2.0),  # rcs_min_crop = 0.5 * 2 ** 2
    ),
    target=dict(
        resize=(1920, 1080),  # Resize(img_scale=(1920, 1080)): ACDC's full resolution
        crop_size=(1024, 1024),
        # No pseudo-label margins (plcrop=False): "ACDC and DarkZurich have no rectification artifacts".
    ),
)
evaluation = dict(resize=(1920, 1080))  # test img_scale=(1920, 1080); the model slides 1024 windows itself

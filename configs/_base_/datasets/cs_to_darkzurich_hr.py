# Cityscapes -> Dark Zurich at HRDA's full resolution: lhoyer/MIC seg/configs/_base_/datasets/
# uda_cityscapesHR_to_darkzurichHR_1024x1024.py and seg/experiments.py id 80 (docs/recipes.md, "Cross-weather").
_base_ = ['./cs_to_darkzurich.py']
data = dict(
    source=dict(
        resize=(2048, 1024),  # Resize(img_scale=(2048, 1024))
        crop_size=(1024, 1024),
        rcs=dict(min_crop_ratio=2.0),  # rcs_min_crop = 0.5 * 2 ** 2
    ),
    target=dict(
        resize=(1920, 1080),  # Resize(img_scale=(1920, 1080))
        crop_size=(1024, 1024),
        # No pseudo-label margins (plcrop=False).
    ),
)
evaluation = dict(resize=(1920, 1080))  # test img_scale=(1920, 1080)

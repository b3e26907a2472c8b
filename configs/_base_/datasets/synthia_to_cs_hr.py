# SYNTHIA -> Cityscapes at HRDA's full resolution: lhoyer/HRDA configs/_base_/datasets/
# uda_synthiaHR_to_cityscapesHR_1024x1024.py with gtaHR2csHR_hrda.py's RCS and margins (docs/recipes.md).
_base_ = ['./synthia_to_cs.py']
data = dict(
    source=dict(
        resize=(2560, 1520),  # Resize(img_scale=(2560, 1520)): SYNTHIA's 1280x760 x2
        crop_size=(1024, 1024),
        rcs=dict(min_crop_ratio=2.0),  # rare_class_sampling min_crop_ratio=2.0
    ),
    target=dict(
        resize=(2048, 1024),
        crop_size=(1024, 1024),
        pseudo_margins=(30, 240, 30, 30),  # crop_pseudo_margins=[30, 240, 30, 30]
    ),
)
evaluation = dict(resize=(2048, 1024))

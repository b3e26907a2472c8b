# GTA5 -> Cityscapes at HRDA's full resolution: lhoyer/HRDA configs/_base_/datasets/
# uda_gtaHR_to_cityscapesHR_1024x1024.py and configs/hrda/gtaHR2csHR_hrda.py (docs/recipes.md, HRDA rows).
# Index directories as ./gta_to_cs.py.
_base_ = ['./gta_to_cs.py']
data = dict(
    source=dict(
        resize=(2560, 1440),  # Resize(img_scale=(2560, 1440)), keep ratio: GTA5's 1914x1052 -> 2560x1407
        crop_size=(1024, 1024),  # crop_size = (1024, 1024)
        rcs=dict(min_crop_ratio=2.0),  # rare_class_sampling min_crop_ratio=2.0 (4x the pixels of DAFormer's crops)
    ),
    target=dict(
        resize=(2048, 1024),  # Resize(img_scale=(2048, 1024)): Cityscapes' full resolution
        crop_size=(1024, 1024),
        # Pseudo-Label Cropping v2: crop_pseudo_margins=[30, 240, 30, 30] (top, bottom, left, right) of the
        # stored frame, masked before the crop (replaces DAFormer's 15 / 120 rows of the crop).
        pseudo_margins=(30, 240, 30, 30),
    ),
)
evaluation = dict(resize=(2048, 1024))  # test img_scale=(2048, 1024); the model slides 1024 windows itself

# PiPa++: DAFormer self-training + pixel (alpha), patch (beta) and temporal (gamma) contrast.
_base_ = ['./dacs.py']
uda = dict(
    pixel_contrast=dict(weight=0.1, tau=0.1, bank_size=200),  # alpha
    patch_contrast=dict(weight=0.1, tau=0.1, iou_range=(0.1, 1.0)),  # beta
    temporal_contrast=dict(weight=0.1, tau=0.1, reference='teacher'),  # gamma; off for one-frame clips
)

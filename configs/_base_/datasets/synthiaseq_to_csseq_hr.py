# SYNTHIA-Seq -> Cityscapes-Seq at HRDA's full resolution, as the HRDA + MIC video baseline trains it
# (SimarKareer/UnifiedVideoDA configs/_base_/datasets/uda_synthiaSeq_CSSeq.py and
# configs/mic/synthiaSeqHR2csHR_mic_hrda.py; docs/recipes.md).
_base_ = ['./synthiaseq_to_csseq.py']
data = dict(
    source=dict(
        # UnifiedVideoDA resizes the whole 1280x760 frames (Resize img_scale=(2560, 1520)); this project's
        # DAFormer recipe cuts DA-VSN's bottom 120 rows first. Kept as the video baseline does:
        # data.source.frame_crop=(0, 120, 0, 0) gives DA-VSN's cut (then 2560x1280 frames).
        frame_crop=None,
        resize=(2560, 1520),
        keep_ratio=True,
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

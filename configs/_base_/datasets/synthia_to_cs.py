# SYNTHIA(-RAND-CITYSCAPES) -> Cityscapes: a 19-class head, 16 classes reported (datasets.md).
#   python data_tools/prepare_synthia.py data/synthia --out data/index/synthia
#   python data_tools/prepare_cityscapes.py data/cityscapes --split train --out data/index/cs_train
#   python data_tools/prepare_cityscapes.py data/cityscapes --split val --out data/index/cs_val
# Pipelines of lhoyer/DAFormer configs/_base_/datasets/uda_synthia_to_cityscapes_512x512.py (no random rescale).
class_set = 'cityscapes19_synthia16'  # 'cityscapes19_synthia13' reports the 13-class mIoU
data = dict(
    source=dict(
        index='data/index/synthia',
        resize=(1280, 760),  # Resize(img_scale=(1280, 760)): SYNTHIA's own size
        keep_ratio=True,
        ratio_range=None,
        crop_size=(512, 512),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True, temperature=0.01, min_pixels=3000, min_crop_ratio=0.5),
    ),
    target=dict(
        index='data/index/cs_train',
        keys='all',
        resize=(1024, 512),
        keep_ratio=True,
        ratio_range=None,
        crop_size=(512, 512),
        flip_prob=0.5,
    ),
    test=dict(index='data/index/cs_val'),
    source_batch_size=2,
    target_batch_size=2,
)
evaluation = dict(protocol='davsn', resize=(1024, 512))

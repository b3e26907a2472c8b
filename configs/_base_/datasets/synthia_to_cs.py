# SYNTHIA(-RAND-CITYSCAPES) -> Cityscapes: a 19-class head, 16 classes reported (datasets.md).
#   python data_tools/prepare_synthia.py data/synthia --out data/index/synthia
#   python data_tools/prepare_cityscapes.py data/cityscapes --split train --out data/index/cs_train
#   python data_tools/prepare_cityscapes.py data/cityscapes --split val --out data/index/cs_val
class_set = 'cityscapes19_synthia16'  # 'cityscapes19_synthia13' reports the 13-class mIoU
data = dict(
    source=dict(
        index='data/index/synthia',
        resize=(1280, 760),
        ratio_range=(0.5, 2.0),
        crop_size=(512, 512),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True),
    ),
    target=dict(
        index='data/index/cs_train',
        keys='all',
        resize=(1024, 512),
        ratio_range=(0.5, 2.0),
        crop_size=(512, 512),
        flip_prob=0.5,
    ),
    test=dict(index='data/index/cs_val'),
)
evaluation = dict(protocol='davsn', resize=(1024, 512))

# GTA5 -> Cityscapes, 19 classes, images as one-frame clips (offsets = []).
#   python data_tools/prepare_gta.py data/gta --out data/index/gta
#   python data_tools/prepare_cityscapes.py data/cityscapes --split train --out data/index/cs_train
#   python data_tools/prepare_cityscapes.py data/cityscapes --split val --out data/index/cs_val
class_set = 'cityscapes19'
data = dict(
    source=dict(
        index='data/index/gta',
        resize=(1280, 720),  # DAFormer: GTA5 1914x1052 resized to 1280x720
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

# GTA5 -> Cityscapes, 19 classes, images as one-frame clips (offsets = []).
#   python data_tools/prepare_gta.py data/gta --out data/index/gta
#   python data_tools/prepare_cityscapes.py data/cityscapes --split train --out data/index/cs_train
#   python data_tools/prepare_cityscapes.py data/cityscapes --split val --out data/index/cs_val
# Pipelines of lhoyer/DAFormer configs/_base_/datasets/uda_gta_to_cityscapes_512x512.py: Resize (mmseg,
# keep_ratio), RandomCrop, RandomFlip, Pad; no random rescale on either domain, photometric jitter only in
# the strong augmentation of the mixed image.
class_set = 'cityscapes19'
data = dict(
    source=dict(
        index='data/index/gta',
        resize=(1280, 720),  # Resize(img_scale=(1280, 720)): GTA5's 1914x1052 -> 1280x704
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
    source_batch_size=2,  # samples_per_gpu=2
    target_batch_size=2,
)
evaluation = dict(protocol='davsn', resize=(1024, 512))

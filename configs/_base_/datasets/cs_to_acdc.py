# Cityscapes -> ACDC (all four conditions), 19 classes, images as one-frame clips (offsets = []).
# Settings of DAFormer's configs/_base_/datasets/uda_cityscapes_to_acdc_512x512.py; every value and
# its source is in docs/recipes.md, "Cross-weather". Index directories are written by:
#   python data_tools/prepare_cityscapes.py data/cityscapes --split train --out data/index/cs_train
#   python data_tools/prepare_acdc.py data/acdc --split train --out data/index/acdc_train
#   python data_tools/prepare_acdc.py data/acdc --split val --out data/index/acdc_val
#   python data_tools/prepare_acdc.py data/acdc --split test --out data/index/acdc_test   (server only)
class_set = 'cityscapes19'
data = dict(
    source=dict(
        index='data/index/cs_train',
        resize=(1024, 512),  # DAFormer: Resize img_scale=(1024, 512), no ratio range
        crop_size=(512, 512),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True),  # rare-class sampling on Cityscapes, T = 0.01, >= 3000 pixels
    ),
    target=dict(
        index='data/index/acdc_train',  # fog, night, rain and snow: 1,600 images
        keys='all',  # the target is unlabelled for the method: every image is a key frame
        resize=(960, 540),  # DAFormer: ACDC 1920x1080 resized to 960x540
        crop_size=(512, 512),  # no cat_max_ratio on the target, as DAFormer
        flip_prob=0.5,
    ),
    # data.val (model selection) is left unset: DAFormer reports its last iteration. The published
    # numbers are ACDC test (server: pipa-video predict --format acdc --index data/index/acdc_test);
    # data.test is ACDC val (406 images), as DAFormer's val/test entries, reported per condition.
    test=dict(index='data/index/acdc_val'),
)
evaluation = dict(protocol='davsn', resize=(960, 540))  # predict at 960x540, score at 1920x1080

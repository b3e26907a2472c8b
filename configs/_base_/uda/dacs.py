# DAFormer self-training (DACS with an EMA teacher, ClassMix, confidence-weighted pseudo-labels) as released:
# lhoyer/DAFormer configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py on top of
# configs/_base_/uda/dacs.py; the step's mechanics are those of mmseg/models/uda/dacs.py and
# mmseg/models/utils/dacs_transforms.py. docs/recipes.md lists each value beside its source.
uda = dict(
    method='self_training',
    ema_alpha=0.999,  # experiment config: alpha=0.999 (the base dacs.py has 0.99)
    pseudo_threshold=0.968,  # base dacs.py; a pixel is confident when its max probability is >= 0.968
    pseudo_weight='batch',  # dacs.py: one weight, the confident share of the whole target batch
    # "Pseudo-Label Crop": the top 15 and bottom 120 rows of the 512-row Cityscapes crop (rectification
    # artefacts, the ego car). Rows of the crop, so they fit Cityscapes(-Seq) targets at 1024x512 only.
    pseudo_ignore_top=15,
    pseudo_ignore_bottom=120,
    classmix_classes='batch',  # get_class_masks: half of torch.unique(whole source batch), 255 included
    source_ce_average='all_pixels',  # mmseg 0.x CrossEntropyLoss: mean over every pixel, ignored ones as 0
    teacher_norm='batch',  # _update_ema covers parameters only; the teacher's BatchNorm runs on batch statistics
    color_jitter_strength=0.2,
    # dacs_transforms.color_jitter jitters when uniform() > p with p=0.2: probability 0.8 (key = the probability)
    color_jitter_prob=0.8,
    blur=True,
    strong_aug_draw='batch',  # one random.uniform per batch decides jitter and blur
    # ImageNet feature distance; only active with pretrained backbone weights
    feature_distance=dict(
        weight=0.005,  # imnet_feature_dist_lambda
        classes=['traffic light', 'traffic sign', 'person', 'rider', 'car', 'truck', 'bus', 'train',
                 'motorcycle', 'bicycle'],  # imnet_feature_dist_classes=[6, 7, 11, ..., 18]
        scale_min_ratio=0.75,  # imnet_feature_dist_scale_min_ratio
    ),
)

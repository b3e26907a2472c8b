# The embedded synthetic benchmark (data_tools/make_synthetic.py): VIPER-layout source,
# Cityscapes-Seq-layout target, 256x128 frames, 15 VIPER classes. `pipa-video demo` generates it
# and points these index paths at its work dir; by hand:
#   python data_tools/make_synthetic.py data/synthetic
#   python data_tools/prepare_viper.py data/synthetic/source --label-step 1 --out data/index/synth_source
#   python data_tools/prepare_cityscapes_seq.py data/synthetic/target --split train --class-set viper15 \
#       --out data/index/synth_target_train   (and --split val / --split test)
class_set = 'viper15'
data = dict(
    source=dict(
        index='data/index/synth_source',
        offsets=[-1],
        keys='labelled',
        ratio_range=(0.75, 1.5),
        crop_size=(128, 128),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True, min_pixels=50),  # frames are 256x128: 3000 pixels is a tenth of one
    ),
    target=dict(
        index='data/index/synth_target_train',
        offsets=[-1],
        keys='all',
        ratio_range=(0.75, 1.5),
        crop_size=(128, 128),
        flip_prob=0.5,
    ),
    val=dict(index='data/index/synth_target_val'),  # held-out split: model selection
    test=dict(index='data/index/synth_target_test'),  # reported split
    source_batch_size=2,
    target_batch_size=2,
    num_workers=0,  # frames are tiny; worker start-up would cost more than it saves on 2 cores
)
evaluation = dict(protocol='davsn')

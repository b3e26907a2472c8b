# VIPER -> Cityscapes-Seq, 15 classes (datasets.md). Index directories are written by:
#   python data_tools/prepare_viper.py data/VIPER --out data/index/viper_train
#   python data_tools/prepare_cityscapes_seq.py data/cityscapes --split train --class-set viper15 \
#       --rider person --out data/index/csseq_viper15_train
#   python data_tools/prepare_cityscapes_seq.py data/cityscapes --split val --class-set viper15 \
#       --rider person --out data/index/csseq_viper15_val
# The DAFormer pipelines (no random rescale) on the video benchmark's frames and clips (DA-VSN / TPS).
class_set = 'viper15'
data = dict(
    source=dict(
        index='data/index/viper_train',
        offsets=[-1],  # DA-VSN / TPS clips: (t, t-1)
        keys='labelled',  # every 10th frame, the common split
        resize=(1280, 720),  # 1920x1080 frames trained at 1280x720
        keep_ratio=True,
        ratio_range=None,
        crop_size=(512, 512),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True, temperature=0.01, min_pixels=3000, min_crop_ratio=0.5),
    ),
    target=dict(
        index='data/index/csseq_viper15_train',
        offsets=[-1],
        keys='all',  # unlabelled target: every frame of a snippet can be a key frame
        resize=(1024, 512),
        keep_ratio=True,
        ratio_range=None,
        crop_size=(512, 512),
        flip_prob=0.5,
    ),
    # data.val is the held-out split for model selection. Cityscapes-Seq has none, so it is left
    # unset: runs report the last iteration, and every report says so.
    test=dict(index='data/index/csseq_viper15_val'),  # the published evaluation split (500 frames)
    source_batch_size=2,
    target_batch_size=2,
)
evaluation = dict(protocol='davsn', resize=(1024, 512))  # predict at 1024x512, score at 2048x1024

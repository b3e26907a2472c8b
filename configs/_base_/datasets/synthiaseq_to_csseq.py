# SYNTHIA-Seq -> Cityscapes-Seq, 12 trained classes, 11 reported (fence dropped; datasets.md).
#   python data_tools/prepare_synthia_seq.py data/SYNTHIA-SEQS-04-DAWN --out data/index/synthiaseq_train
#   python data_tools/prepare_cityscapes_seq.py data/cityscapes --split train --class-set synthiaseq12 \
#       --out data/index/csseq_synthiaseq12_train
#   python data_tools/prepare_cityscapes_seq.py data/cityscapes --split val --class-set synthiaseq12 \
#       --out data/index/csseq_synthiaseq12_val
# The DAFormer pipelines (no random rescale) on the video benchmark's frames and clips (DA-VSN / TPS).
class_set = 'synthiaseq12'
data = dict(
    source=dict(
        index='data/index/synthiaseq_train',
        offsets=[-1],
        keys='labelled',  # every SYNTHIA-Seq frame is labelled
        # DA-VSN / TPS train on 1280x760 frames without the bottom 120 rows, 1280x640 (Dayan-Guan/DA-VSN
        # davsn/dataset/SynthiaSeq.py: image[:-120]); no resize after it.
        frame_crop=(0, 120, 0, 0),
        resize=None,
        ratio_range=None,
        crop_size=(512, 512),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True, temperature=0.01, min_pixels=3000, min_crop_ratio=0.5),
    ),
    target=dict(
        index='data/index/csseq_synthiaseq12_train',
        offsets=[-1],
        keys='all',
        resize=(1024, 512),
        keep_ratio=True,
        ratio_range=None,
        crop_size=(512, 512),
        flip_prob=0.5,
    ),
    test=dict(index='data/index/csseq_synthiaseq12_val'),  # published evaluation split
    source_batch_size=2,
    target_batch_size=2,
)
evaluation = dict(protocol='davsn', resize=(1024, 512))

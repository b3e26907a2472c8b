# SYNTHIA-Seq -> Cityscapes-Seq, 12 trained classes, 11 reported (fence dropped; datasets.md).
#   python data_tools/prepare_synthia_seq.py data/SYNTHIA-SEQS-04-DAWN --out data/index/synthiaseq_train
#   python data_tools/prepare_cityscapes_seq.py data/cityscapes --split train --class-set synthiaseq12 \
#       --out data/index/csseq_synthiaseq12_train
#   python data_tools/prepare_cityscapes_seq.py data/cityscapes --split val --class-set synthiaseq12 \
#       --out data/index/csseq_synthiaseq12_val
class_set = 'synthiaseq12'
data = dict(
    source=dict(
        index='data/index/synthiaseq_train',
        offsets=[-1],
        keys='labelled',  # every SYNTHIA-Seq frame is labelled
        resize=(1280, 760),
        ratio_range=(0.5, 2.0),
        crop_size=(512, 512),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        rcs=dict(enabled=True),
    ),
    target=dict(
        index='data/index/csseq_synthiaseq12_train',
        offsets=[-1],
        keys='all',
        resize=(1024, 512),
        ratio_range=(0.5, 2.0),
        crop_size=(512, 512),
        flip_prob=0.5,
    ),
    test=dict(index='data/index/csseq_synthiaseq12_val'),  # published evaluation split
)
evaluation = dict(protocol='davsn', resize=(1024, 512))

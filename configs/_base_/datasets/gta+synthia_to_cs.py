# GTA5 + SYNTHIA(-RAND-CITYSCAPES) -> Cityscapes: multi-source, a 19-class head, 19 classes reported.
#   python data_tools/prepare_gta.py data/gta --out data/index/gta
#   python data_tools/prepare_synthia.py data/synthia --out data/index/synthia
#   python data_tools/prepare_cityscapes.py data/cityscapes --split train --out data/index/cs_train
#   python data_tools/prepare_cityscapes.py data/cityscapes --split val --out data/index/cs_val
# No DAFormer-family code (lhoyer/DAFormer, lhoyer/HRDA, lhoyer/MIC, chen742/PiPa) publishes a multi-source
# config. Each source keeps the pipeline DAFormer publishes for it alone (uda_gta_to_cityscapes_512x512.py,
# uda_synthia_to_cityscapes_512x512.py); the shared keys are the GTA5 section of ./gta_to_cs.py (data.source:
# 512x512 crops, cat_max_ratio 0.75, flip 0.5, RCS T=0.01 / 3000 pixels / re-crop 0.5, applied per source).
# docs/recipes.md, "Multi-source", lists every value and why.
_base_ = ['./gta_to_cs.py']
# GTA5 annotates all 19 classes, SYNTHIA 16 (no terrain, truck, train: ignored in its frames, never drawn by
# its rare-class sampling). MADAN (Luodian/MADAN scripts/eval_fcn.py) reports the 19-class mIoU and the
# 16-class one; 'cityscapes19_synthia16' gives the latter.
class_set = 'cityscapes19'
data = dict(
    sources=[
        # weight: MADAN alternates the two sources (cycada/data/cyclesynthia_cyclegta5.py: index % 2), i.e.
        # equal shares; a concatenation of the datasets would give SYNTHIA 9,400 / 34,366 = 27%.
        dict(index='data/index/gta', resize=(1280, 720), keep_ratio=True, weight=0.5),  # 1914x1052 -> 1280x704
        dict(index='data/index/synthia', resize=(1280, 760), keep_ratio=True, weight=0.5),  # its own size
    ],
)

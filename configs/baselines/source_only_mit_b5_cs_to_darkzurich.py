# Source-only baseline, MiT-B5, Cityscapes -> Dark Zurich: trained on Cityscapes with the same
# pipeline and schedule, evaluated on the target (docs/recipes.md, "Cross-weather").
_base_ = [
    '../_base_/datasets/cs_to_darkzurich.py',
    '../_base_/models/mit_b5_daformer.py',
    '../_base_/schedules/iter_40k.py',
    '../_base_/uda/source_only.py',
]

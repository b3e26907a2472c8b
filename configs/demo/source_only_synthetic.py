# Demo: source-only on the synthetic benchmark, tiny model, CPU.
_base_ = [
    '../_base_/datasets/synthetic_demo.py',
    '../_base_/models/mit_demo.py',
    '../_base_/schedules/demo.py',
    '../_base_/uda/source_only.py',
]

# Demo: HRDA + MIC on the synthetic benchmark, tiny model, CPU. The data, schedule and self-training step
# are the DAFormer demo's (./dacs_synthetic.py): HRDA + MIC is the only difference from it.
_base_ = ['./dacs_synthetic.py']
model = dict(
    type='hrda',  # HRDA around the tiny MiT and its SegFormer head
    hrda=dict(
        # HRDA's proportions at the demo's size: its 512 px detail crop is half the side of its 1024 px
        # training crop, its 1024 px test window half the width of a 2048x1024 frame, its stride half a
        # window. Here: 64 of the 128 px crop; windows of 128 px (half the 256x128 frame's width), stride 64.
        detail_crop=(64, 64),
        test_window=(128, 128),
        test_stride=(64, 64),
    ),
)
uda = dict(
    mic=dict(
        weight=1.0,  # mask_lambda=1 (MIC seg/configs/mic/gtaHR2csHR_mic_hrda.py)
        # MIC's 64 px blocks are 1/16 of its 1024 px crop side (32 px for DAFormer's 512 px crops, MIC
        # seg/experiments.py id 81); 1/16 of the demo's 128 px crop is 8 px.
        block_size=8,
    ),
)
# Not HRDA's data settings: every demo method keeps the same frames, 128x128 crops, random rescale and RCS
# min_crop_ratio 0.5 (HRDA's 2.0 makes up for inputs with 4x the pixels of DAFormer's, which the demo's are
# not), and no pseudo-label margins (the synthetic target has no rectification artefacts).

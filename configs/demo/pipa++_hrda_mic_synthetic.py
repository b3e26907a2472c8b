# Demo: PiPa++ on HRDA + MIC on the synthetic benchmark, tiny model, CPU: the demo's PiPa++
# (./pipa++_synthetic.py) with the HRDA model and MIC term of ./hrda_mic_synthetic.py (the same values;
# tests/test_recipes.py checks that the two differ only in the contrasts). On HRDA the contrasts take
# the detail crop's features and labels (the same crop at the same stride).
_base_ = ['./pipa++_synthetic.py']
model = dict(
    type='hrda',
    hrda=dict(detail_crop=(64, 64), test_window=(128, 128), test_stride=(64, 64)),  # see hrda_mic_synthetic.py
)
uda = dict(mic=dict(weight=1.0, block_size=8))  # see hrda_mic_synthetic.py

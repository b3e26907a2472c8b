# The demo's PiPa++ config (configs/demo/pipa++_synthetic.py), listed here with the benchmark configs.
_base_ = ['../demo/pipa++_synthetic.py']

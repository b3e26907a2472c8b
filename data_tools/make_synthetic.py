#!/usr/bin/env python
"""Write the embedded synthetic benchmark: ROOT/source (VIPER layout), ROOT/target (Cityscapes-Seq
layout, train/val/test) and ROOT/SYNTHETIC_INFO.json, deterministically from --seed.

Usage: python data_tools/make_synthetic.py ROOT [--seed 0] [--size 256x128] [--scale 1.0] [--help]
"""
import sys

from pipa_video.data.synthetic import main

if __name__ == "__main__":
    sys.exit(main())

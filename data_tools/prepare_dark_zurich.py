#!/usr/bin/env python
"""Dark Zurich: ROOT holds rgb_anon/ and gt/ (val only); night images by default; cityscapes19.

Usage: python data_tools/prepare_dark_zurich.py ROOT --split {train,val,test} [--time night|twilight|day] --out DIR
[--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="dark_zurich"))

#!/usr/bin/env python
"""ACDC (fog, night, rain, snow): ROOT holds rgb_anon/ and gt/ (or HRDA's flattened rgb_anon/<split>/); cityscapes19.

Usage: python data_tools/prepare_acdc.py ROOT --split {train,val,test} [--conditions fog,night,rain,snow] --out DIR
[--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="acdc"))

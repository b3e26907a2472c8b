#!/usr/bin/env python
"""SYNTHIA-RAND-CITYSCAPES (source images): ROOT holds RGB/ and GT/LABELS/; cityscapes19 by default.

Usage: python data_tools/prepare_synthia.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="synthia"))

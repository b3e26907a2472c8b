#!/usr/bin/env python
"""Cityscapes (images): ROOT holds leftImg8bit/ and gtFine/; cityscapes19 by default.

Usage: python data_tools/prepare_cityscapes.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="cityscapes"))

#!/usr/bin/env python
"""GTA5 (source images): ROOT holds images/ and labels/; cityscapes19 by default.

Usage: python data_tools/prepare_gta.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="gta"))

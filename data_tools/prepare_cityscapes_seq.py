#!/usr/bin/env python
"""Cityscapes-Seq (target video): snippets around the gtFine-annotated frames; --class-set is required.

Usage: python data_tools/prepare_cityscapes_seq.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="cityscapes_seq"))

#!/usr/bin/env python
"""SYNTHIA-Seq (source video): ROOT is a SYNTHIA-SEQS-* folder or a folder of them; synthiaseq12 by default.

Usage: python data_tools/prepare_synthia_seq.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="synthia_seq"))

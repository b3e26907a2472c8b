#!/usr/bin/env python
"""VIPER (source video): ROOT is the VIPER folder; labels every 10th frame, viper15 by default.

Usage: python data_tools/prepare_viper.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="viper"))

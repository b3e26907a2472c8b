#!/usr/bin/env python
"""Your own footage (no labels): a video, a photo, or a folder of videos, frame folders and photos.

Usage: python data_tools/prepare_video.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.footage import main

if __name__ == "__main__":
    sys.exit(main())

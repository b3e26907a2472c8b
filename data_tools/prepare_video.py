#!/usr/bin/env python
"""Your own footage (no labels): ROOT is a video file or a folder of videos (.mp4/.avi/.mkv/.mov).

Usage: python data_tools/prepare_video.py ROOT --out DIR [--help for every option]
"""
import sys

from pipa_video.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(layout="video_file"))

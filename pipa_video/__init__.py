"""pipa-video: domain adaptive semantic segmentation of driving video with PiPa++."""
__version__ = "0.1.0"

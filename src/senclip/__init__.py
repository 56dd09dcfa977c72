"""senclip: ground-aligned satellite CLIP models for Sentinel-2."""

__version__ = "0.1.0"

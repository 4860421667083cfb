"""Slides stage: resolution, tissue segmentation, tiling, QC."""

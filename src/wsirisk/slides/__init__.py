"""Slides stage: resolution, tissue segmentation, tiling, QC.

Modules (light imports only; no torch on this path):
    options     the `slides` config section, presets (tcga, biopsy), params hash
    resolution  level-0 um/px from override / OpenSlide / vendor keys / TIFF tags / objective
    segment     low-resolution read + HSV saturation segmentation with holes
    grid        read plan (level, read size) and vectorised tile selection on the mask
    tile        `wsirisk tile` and ``tile_slide()``
    outputs     QuPath GeoJSON + QC thumbnail
    qc          `wsirisk qc-slides`
    clam        `wsirisk export-clam` (CLAM h5 coords layout)
    compare     coverage IoU between two tilings (e.g. vs CLAM)
    sniff       why OpenSlide could not open a file
    synthetic   small synthetic slides for tests and benchmarks
    read        open_slide / read_tile shared with feature extraction
    pyramid     pyramidal TIFF writer
"""

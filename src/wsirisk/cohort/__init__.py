"""Cohort bookkeeping before any tiling or training.

Modules: ``sheet`` (``wsirisk sheet``: validate the slide sample sheet, one QC row per bad row,
extraction batches), ``table`` (``wsirisk cohort``: one row per patient, modality counts, the
slide/omics ID-mismatch check), ``ids`` (how two sets of patient IDs differ).
"""

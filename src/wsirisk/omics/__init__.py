"""Omics tables (PORPOISE/MCAT layout) -> one row per patient -> six gene categories.

Modules: ``signatures`` (category -> genes), ``table`` (cohort CSV + QC), ``build``
(``wsirisk omics``: omics.zarr), ``summary`` (``wsirisk omics-summary``), ``load``
(``load_omics`` for the training code).
"""

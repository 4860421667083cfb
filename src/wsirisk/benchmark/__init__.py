"""Benchmarks with known truth: feature-level synthetic cohorts (no pixels) that the real
trainer reads unchanged. See :mod:`wsirisk.benchmark.cohort` and ``bench/multimodal.py``."""

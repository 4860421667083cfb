"""wsirisk: whole-slide images and omics to survival risk (ME-Mamba pipeline)."""

__version__ = "0.1.0"

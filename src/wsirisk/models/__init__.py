"""Survival model zoo under one interface.

Usage::

    model = build_model("abmil_snn", path_dim=1024, omics_sizes=[10] * 6, n_bins=4)
    out = model(x_path, x_omics)  # x_path (N, path_dim) or None; x_omics: six (F_g,) or None

``out.logits`` (1, n_bins) are hazard logits; ``out.aux_loss`` is added to :func:`nll_loss`;
``out.attention`` (N,) is patch attention or None; ``out.embeddings`` maps "pathology",
"genomics" and "fusion" to pooled (1, dim) vectors (those that exist for the inputs given).

Models: "snn" (genomics), "abmil" (pathology), "abmil_snn" (late fusion), "mcat" (genomic-query
co-attention + transformers), "transmil" (TransMIL over all patches + SNN: the patch-level
self-attention baseline of the efficiency comparison), "me_mamba" (ablation switches in
:class:`wsirisk.models.me_mamba.MEMamba`), "survmamba" (:mod:`wsirisk.models.survmamba`;
it takes the genomic ``feature_names`` to build its gene hierarchy, see
:data:`USES_FEATURE_NAMES`), "adamhf" (:class:`wsirisk.models.adamhf.AdaMHF`) and
"m4survive" (:class:`wsirisk.models.m4survive.M4Survive`: a Cox model, ``out.risk`` is its
log-risk; it also reads the ``extra`` per-patient modalities).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .common import GENOMICS, PATHOLOGY, ModelOutput
from .losses import (
    breslow_cumhaz,
    cox_ph_loss,
    cox_survival,
    mmd2,
    nll_loss,
    output_risk,
    risk_from_logits,
    survival_from_logits,
)

MODEL_NAMES: tuple[str, ...] = (
    "snn",
    "abmil",
    "abmil_snn",
    "mcat",
    "transmil",
    "me_mamba",
    "survmamba",
    "adamhf",
    "m4survive",
)
# models whose constructor takes ``feature_names`` (six lists of genomic feature names, in
# ``layout.CATEGORIES`` order): the trainer passes them (and the checkpoint keeps them)
USES_FEATURE_NAMES: frozenset[str] = frozenset({"survmamba"})
COX_MODELS = frozenset({"m4survive"})  # models whose class declares default_loss = "cox"
EXTRA_MODELS = frozenset({"m4survive"})  # models built with extra_dims (the open modality list)

__all__ = [
    "GENOMICS",
    "MODEL_NAMES",
    "PATHOLOGY",
    "USES_FEATURE_NAMES",
    "ModelOutput",
    "breslow_cumhaz",
    "build_model",
    "cox_ph_loss",
    "cox_survival",
    "declared_loss",
    "mmd2",
    "nll_loss",
    "output_risk",
    "risk_from_logits",
    "survival_from_logits",
]


def build_model(
    name: str,
    *,
    path_dim: int = 1024,
    omics_sizes: list[int] | None = None,
    n_bins: int = 4,
    dropout: float = 0.25,
    **kwargs: Any,
) -> nn.Module:
    """Instantiate a model by name; ``kwargs`` are model-specific options (e.g. ablations).

    ``omics_sizes`` (six group sizes) is required by every model that uses genomics.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if name != "abmil" and not omics_sizes:
        raise ValueError(f"model {name!r} needs omics_sizes (the six genomic group sizes)")
    sizes = list(omics_sizes or [])
    if name == "snn":
        from .baselines import SNN

        return SNN(sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "abmil":
        from .baselines import ABMIL

        return ABMIL(path_dim, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "abmil_snn":
        from .baselines import ABMILSNN

        return ABMILSNN(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "mcat":
        from .mcat import MCAT

        return MCAT(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "adamhf":
        from .adamhf import AdaMHF

        return AdaMHF(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "m4survive":
        from .m4survive import M4Survive

        return M4Survive(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "transmil":
        from .transmil import TransMILSNN

        return TransMILSNN(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    if name == "survmamba":
        from .survmamba import SurvMamba

        return SurvMamba(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)
    from .me_mamba import MEMamba

    return MEMamba(path_dim, sizes, n_bins=n_bins, dropout=dropout, **kwargs)


def declared_loss(name: str) -> str:
    """The survival loss a model is trained with under ``loss: auto``: "cox" or "nll"."""
    return "cox" if name in COX_MODELS else "nll"

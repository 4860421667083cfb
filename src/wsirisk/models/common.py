"""Shared building blocks: model output, SNN blocks, gated attention pooling, input checks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.utils.checkpoint
from torch import Tensor, nn

PATHOLOGY = "pathology"
GENOMICS = "genomics"


@dataclass
class ModelOutput:
    """What every survival model returns for one patient.

    ``logits`` (1, n_bins) are hazard logits (``hazards = sigmoid(logits)``); ``aux_loss`` is a
    scalar added to the survival loss (0 when none); ``attention`` (N,) is a distribution over the
    input patches (or None); ``embeddings`` holds per-expert token sets for visualisation.
    ``risk`` (1,) is set only by models trained on a scalar log-risk (Cox partial likelihood);
    read a patient's risk with :func:`wsirisk.models.output_risk`, never from ``logits`` directly.

    Every model's ``forward(x_path, x_omics, coords=None, extra=None)`` takes the bag (N, D) or
    None, the six genomic group vectors or None, the patches' positions ``coords`` (N, 2) in
    micrometres (slides of one patient placed side by side, see
    :func:`wsirisk.features.io.patient_coords_um`), and ``extra``: further per-patient modality
    vectors by name; models that do not use an input ignore it.
    """

    logits: Tensor
    aux_loss: Tensor
    attention: Tensor | None = None
    embeddings: dict[str, Tensor] = field(default_factory=dict)
    risk: Tensor | None = None


def snn_block(dim_in: int, dim_out: int, dropout: float = 0.25) -> nn.Sequential:
    """Self-normalising block: Linear -> ELU -> AlphaDropout (Klambauer et al.)."""
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.ELU(), nn.AlphaDropout(p=dropout))


def snn_init(module: nn.Module) -> None:
    """LeCun-normal init of every Linear (``std = 1/sqrt(fan_in)``), zero bias, as in MCAT."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0 / math.sqrt(m.weight.shape[1]))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def snn_encoder(dim_in: int, hidden: int = 256, dropout: float = 0.25) -> nn.Sequential:
    """Two-layer SNN (``dim_in -> hidden -> hidden``) with SNN initialisation."""
    net = nn.Sequential(snn_block(dim_in, hidden, dropout), snn_block(hidden, hidden, dropout))
    snn_init(net)
    return net


def patch_fc(path_dim: int, hidden: int, dropout: float = 0.25) -> nn.Sequential:
    """Patch features -> hidden: Linear-ReLU-Dropout (the PORPOISE / MCAT patch embedding)."""
    return nn.Sequential(nn.Linear(path_dim, hidden), nn.ReLU(), nn.Dropout(dropout))


class MultimodalModel(nn.Module):
    """Set-up shared by the pathology + genomics models: checks ``omics_sizes`` and records
    ``modalities``, ``path_dim``, ``omics_sizes`` and ``hidden`` (the fused vector size)."""

    def __init__(
        self, name: str, path_dim: int, omics_sizes: list[int] | None, hidden: int
    ) -> None:  # fmt: skip
        super().__init__()
        if not omics_sizes:
            raise ValueError(f"{name} needs omics_sizes")
        self.modalities: set[str] = {PATHOLOGY, GENOMICS}
        self.path_dim, self.omics_sizes, self.hidden = path_dim, list(omics_sizes), hidden


class GatedAttention(nn.Module):
    """Gated attention scores (Ilse et al. ABMIL / CLAM ``Attn_Net_Gated``).

    ``forward(h)`` returns unnormalised scores (N,) for tokens ``h`` (N, dim). With
    ``checkpoint=True`` the hidden activations are recomputed in the backward pass, chunk by
    chunk of tokens, instead of being stored (memory O(N) floats instead of O(N hidden)).
    """

    checkpoint_chunk = 2048

    def __init__(
        self, dim: int = 256, hidden: int = 256, dropout: float = 0.25, checkpoint: bool = False
    ) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.b = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.c = nn.Linear(hidden, 1, bias=False)  # a bias cancels in the softmax
        self.checkpoint = checkpoint

    def _scores(self, h: Tensor) -> Tensor:
        return self.c(self.a(h) * self.b(h)).squeeze(-1)

    def forward(self, h: Tensor) -> Tensor:
        if self.checkpoint and torch.is_grad_enabled() and h.requires_grad:
            parts = [
                torch.utils.checkpoint.checkpoint(self._scores, part, use_reentrant=False)
                for part in h.split(self.checkpoint_chunk)
            ]
            return torch.cat(parts)
        return self._scores(h)


class AttentionPool(nn.Module):
    """Gated-attention MIL pooling followed by ``rho`` (Linear-ReLU-Dropout).

    Returns the bag embedding (dim,) and the softmax attention (N,).
    """

    def __init__(self, dim: int = 256, dropout: float = 0.25, checkpoint: bool = False) -> None:
        super().__init__()
        self.attn = GatedAttention(dim, dim, dropout, checkpoint)
        self.rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        a = torch.softmax(self.attn(h), dim=0)
        return self.rho(a @ h), a


def concat_fusion_head(dim: int, n_bins: int) -> tuple[nn.Sequential, nn.Linear]:
    """PORPOISE/MCAT 'concat' fusion MLP (2*dim -> dim -> dim) and the hazard classifier."""
    mm = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
    return mm, nn.Linear(dim, n_bins)


def check_inputs(
    name: str,
    required: set[str],
    x_path: Tensor | None,
    x_omics: list[Tensor] | None,
    path_dim: int,
    n_groups: int,
) -> None:
    """Raise a clear ValueError when the inputs cannot feed a model.

    ``required`` lists modalities that must be present (unimodal models); fusion models pass an
    empty set and need at least one modality.
    """
    if PATHOLOGY in required and x_path is None:
        raise ValueError(f"model {name!r} needs pathology features (x_path) but got None")
    if GENOMICS in required and x_omics is None:
        raise ValueError(f"model {name!r} needs genomic features (x_omics) but got None")
    if x_path is None and x_omics is None:
        raise ValueError(f"model {name!r} got neither pathology nor genomic inputs")
    if x_path is not None and (x_path.dim() != 2 or x_path.shape[1] != path_dim):
        raise ValueError(f"x_path must be (N, {path_dim}), got {tuple(x_path.shape)}")
    if x_path is not None and x_path.shape[0] == 0:
        raise ValueError("x_path has no patches")
    if x_omics is not None and len(x_omics) != n_groups:
        raise ValueError(f"x_omics must hold {n_groups} group tensors, got {len(x_omics)}")


def zero_loss(ref: Tensor) -> Tensor:
    """A scalar zero on ``ref``'s device and dtype."""
    return ref.new_zeros(())

"""Simple survival baselines: SNN (genomics), ABMIL (pathology), ABMIL+SNN late fusion."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import (
    GENOMICS,
    PATHOLOGY,
    AttentionPool,
    ModelOutput,
    MultimodalModel,
    check_inputs,
    concat_fusion_head,
    patch_fc,
    snn_encoder,
    zero_loss,
)


class SNN(nn.Module):
    """Genomics-only SNN (PORPOISE): all six groups concatenated -> 2-layer SNN -> hazards.

    Embedding ``"genomics"`` is the (1, 256) patient vector.
    """

    def __init__(
        self, omics_sizes: list[int], n_bins: int = 4, dropout: float = 0.25, hidden: int = 256
    ) -> None:
        super().__init__()
        self.modalities: set[str] = {GENOMICS}
        self.omics_sizes = list(omics_sizes)
        self.encoder = snn_encoder(sum(self.omics_sizes), hidden, dropout)
        self.classifier = nn.Linear(hidden, n_bins)

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("snn", {GENOMICS}, None, x_omics, 0, len(self.omics_sizes))
        assert x_omics is not None
        h = self.encoder(torch.cat([g.reshape(-1) for g in x_omics]).unsqueeze(0))
        return ModelOutput(self.classifier(h), zero_loss(h), None, {GENOMICS: h.detach()})


class ABMIL(nn.Module):
    """Pathology-only gated-attention MIL (Ilse et al.; PORPOISE ``MIL_Attention_FC_surv``).

    Patches ``1024 -> 256`` (Linear-ReLU-Dropout), gated attention pooling, rho, classifier.
    Embedding ``"pathology"`` is the (1, 256) bag vector.
    """

    def __init__(
        self, path_dim: int = 1024, n_bins: int = 4, dropout: float = 0.25, hidden: int = 256
    ) -> None:
        super().__init__()
        self.modalities: set[str] = {PATHOLOGY}
        self.path_dim = path_dim
        self.fc = patch_fc(path_dim, hidden, dropout)
        self.pool = AttentionPool(hidden, dropout)
        self.classifier = nn.Linear(hidden, n_bins)

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("abmil", {PATHOLOGY}, x_path, None, self.path_dim, 0)
        assert x_path is not None
        h, a = self.pool(self.fc(x_path))
        h = h.unsqueeze(0)
        return ModelOutput(self.classifier(h), zero_loss(h), a, {PATHOLOGY: h.detach()})


class ABMILSNN(MultimodalModel):
    """Late fusion of ABMIL (pathology) and SNN (genomics) bag vectors (PORPOISE 'concat').

    ``[h_path, h_omic] -> Linear-ReLU-Linear-ReLU -> classifier``. A missing modality skips its
    branch; its slot in the concatenation is zero (no features), so the model still runs.
    """

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        hidden: int = 256,
    ) -> None:
        super().__init__("abmil_snn", path_dim, omics_sizes, hidden)
        self.fc = patch_fc(path_dim, hidden, dropout)
        self.pool = AttentionPool(hidden, dropout)
        self.omic = snn_encoder(sum(self.omics_sizes), hidden, dropout)
        self.mm, self.classifier = concat_fusion_head(hidden, n_bins)

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("abmil_snn", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        ref = self.classifier.weight
        attention = None
        emb: dict[str, Tensor] = {}
        h_path = ref.new_zeros(self.hidden)
        h_omic = ref.new_zeros(self.hidden)
        if x_path is not None:
            h_path, attention = self.pool(self.fc(x_path))
            emb[PATHOLOGY] = h_path.detach().unsqueeze(0)
        if x_omics is not None:
            h_omic = self.omic(torch.cat([g.reshape(-1) for g in x_omics]))
            emb[GENOMICS] = h_omic.detach().unsqueeze(0)
        h = self.mm(torch.cat([h_path, h_omic]).unsqueeze(0))
        emb["fusion"] = h.detach()
        return ModelOutput(self.classifier(h), zero_loss(h), attention, emb)

"""MCAT-style attention baseline (Chen et al., ICCV 2021): genomic-query co-attention + transformers.

Six genomic group tokens (two-layer SNN each) query the patch tokens through single-head
co-attention; the six co-attended pathology tokens and the six genomic tokens each go through a
two-layer transformer encoder and gated-attention pooling; the two bag vectors are concatenated,
fused by an MLP and classified. Patch attention (for heatmaps) is the co-attention averaged over
the six genomic queries. Embeddings are the pooled (1, 256) vectors of each branch and of the
fusion MLP.

Missing modality: without omics there are no queries, so the pathology branch pools the patch
tokens directly (gated attention, no co-attention/transformer); a missing branch contributes a
zero vector to the concatenation. The pathology transformer of real MCAT runs on the six
co-attended tokens, so its memory is linear in the number of patches.
"""

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


def _encoder(dim: int, dropout: float, layers: int = 2, heads: int = 8) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=dim,
        nhead=heads,
        dim_feedforward=2 * dim,
        dropout=dropout,
        activation="relu",
        batch_first=True,
    )
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


class MCAT(MultimodalModel):
    """Multimodal co-attention transformer for survival (see module docstring)."""

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        hidden: int = 256,
        n_layers: int = 2,
    ) -> None:
        super().__init__("mcat", path_dim, omics_sizes, hidden)
        self.wsi_net = patch_fc(path_dim, hidden, dropout)
        self.sig_networks = nn.ModuleList(snn_encoder(n, hidden, dropout) for n in self.omics_sizes)
        self.coattn = nn.MultiheadAttention(hidden, num_heads=1, batch_first=True)
        self.path_transformer = _encoder(hidden, dropout, n_layers)
        self.path_pool = AttentionPool(hidden, dropout)
        self.omic_transformer = _encoder(hidden, dropout, n_layers)
        self.omic_pool = AttentionPool(hidden, dropout)
        self.mm, self.classifier = concat_fusion_head(hidden, n_bins)

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("mcat", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        ref = self.classifier.weight
        emb: dict[str, Tensor] = {}
        attention = None
        h_path = ref.new_zeros(self.hidden)
        h_omic = ref.new_zeros(self.hidden)
        g_tokens = None
        if x_omics is not None:
            g_tokens = torch.stack(
                [net(g.reshape(-1)) for net, g in zip(self.sig_networks, x_omics, strict=True)]
            )  # (6, D)
        if x_path is not None:
            p_tokens = self.wsi_net(x_path)  # (N, D)
            if g_tokens is not None:
                co, a_co = self.coattn(
                    g_tokens.unsqueeze(0), p_tokens.unsqueeze(0), p_tokens.unsqueeze(0)
                )  # (1, 6, D), (1, 6, N)
                tokens = self.path_transformer(co).squeeze(0)
                h_path, _ = self.path_pool(tokens)
                attention = a_co.squeeze(0).mean(dim=0)
            else:
                h_path, attention = self.path_pool(p_tokens)
            emb[PATHOLOGY] = h_path.detach().unsqueeze(0)
        if g_tokens is not None:
            tokens = self.omic_transformer(g_tokens.unsqueeze(0)).squeeze(0)
            h_omic, _ = self.omic_pool(tokens)
            emb[GENOMICS] = h_omic.detach().unsqueeze(0)
        h = self.mm(torch.cat([h_path, h_omic]).unsqueeze(0))
        emb["fusion"] = h.detach()
        return ModelOutput(self.classifier(h), zero_loss(h), attention, emb)

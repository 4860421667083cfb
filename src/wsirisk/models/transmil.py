"""TransMIL + SNN: a patch-level self-attention baseline (Shao et al., NeurIPS 2021).

Pathology: patches ``path_dim -> 512`` (Linear-ReLU), padded to a square by repeating the
first tokens, a class token, TransLayer (Nystrom attention: 8 heads, 256 landmarks, 6
pseudo-inverse iterations, depthwise residual conv over values), PPEG (7/5/3 depthwise convs
on the token grid), a second TransLayer, LayerNorm; the class token is the slide vector.
Genomics: all groups concatenated -> two-layer SNN. Fusion: PORPOISE 'concat' MLP on
``[Linear(512 -> 256)(slide), omics]``; a missing modality contributes a zero vector.

This is the transformer over *all* patch tokens that CMTA/CCL-style models use (the paper's
efficiency comparison, Fig. 3); memory and time grow with the number of patches through the
``n x landmarks`` attention maps. ``attention`` is the class token's Nystrom attention over
the patches in the last layer, averaged over heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import (
    GENOMICS,
    PATHOLOGY,
    ModelOutput,
    MultimodalModel,
    check_inputs,
    concat_fusion_head,
    snn_encoder,
    zero_loss,
)


def _pinv(x: Tensor, iters: int = 6) -> Tensor:
    """Iterative Moore-Penrose pseudo-inverse (Razavi et al.) as in Nystromformer."""
    abs_x = x.abs()
    z = x.transpose(-1, -2) / (abs_x.sum(-1).max() * abs_x.sum(-2).max())
    eye = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


class NystromAttention(nn.Module):
    """Nystrom self-attention with landmark means and a residual value convolution."""

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        landmarks: int = 256,
        pinv_iters: int = 6,
        conv_kernel: int = 33,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.heads, self.landmarks, self.pinv_iters = heads, landmarks, pinv_iters
        self.dim_head = dim // heads
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.res_conv = nn.Conv2d(
            heads, heads, (conv_kernel, 1), padding=(conv_kernel // 2, 0), groups=heads, bias=False
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (1, n, dim) -> output (1, n, dim) and token-0 attention over tokens (n,)."""
        _, n, dim = x.shape
        m = self.landmarks
        pad = (m - n % m) % m
        x = F.pad(x, (0, 0, pad, 0))
        length = x.shape[1]
        q, k, v = (
            t.reshape(1, length, self.heads, self.dim_head).transpose(1, 2)
            for t in self.to_qkv(x).chunk(3, dim=-1)
        )
        q = q * self.dim_head**-0.5
        group = length // m
        q_l = q.reshape(1, self.heads, m, group, self.dim_head).mean(3)
        k_l = k.reshape(1, self.heads, m, group, self.dim_head).mean(3)
        attn1 = torch.softmax(q @ k_l.transpose(-1, -2), dim=-1)  # (1, h, L, m)
        attn2 = torch.softmax(q_l @ k_l.transpose(-1, -2), dim=-1)  # (1, h, m, m)
        attn3 = torch.softmax(q_l @ k.transpose(-1, -2), dim=-1)  # (1, h, m, L)
        left = attn1 @ _pinv(attn2, self.pinv_iters)
        out = left @ (attn3 @ v) + self.res_conv(v)
        out = self.to_out(out.transpose(1, 2).reshape(1, length, dim))[:, pad:]
        cls_attn = (left[:, :, pad : pad + 1] @ attn3).mean(1).reshape(-1)[pad:]
        return out, cls_attn


class TransLayer(nn.Module):
    """Pre-norm residual Nystrom attention layer."""

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, heads=8, landmarks=dim // 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out, attn = self.attn(self.norm(x))
        return x + out, attn


class PPEG(nn.Module):
    """Pyramid position encoding generator: depthwise 7/5/3 convs on the square token grid."""

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 7, 1, 3, groups=dim)
        self.proj1 = nn.Conv2d(dim, dim, 5, 1, 2, groups=dim)
        self.proj2 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: Tensor, side: int) -> Tensor:
        cls, feat = x[:, :1], x[:, 1:]
        grid = feat.transpose(1, 2).reshape(1, x.shape[2], side, side)
        grid = grid + self.proj(grid) + self.proj1(grid) + self.proj2(grid)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


class TransMILSNN(MultimodalModel):
    """TransMIL pathology branch + SNN genomics, concat fusion (see module docstring)."""

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        hidden: int = 256,
        trans_dim: int = 512,
    ) -> None:
        super().__init__("transmil", path_dim, omics_sizes, hidden)
        self.fc1 = nn.Sequential(nn.Linear(path_dim, trans_dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, trans_dim) * 0.02)
        self.layer1, self.layer2 = TransLayer(trans_dim), TransLayer(trans_dim)
        self.pos = PPEG(trans_dim)
        self.norm = nn.LayerNorm(trans_dim)
        self.path_out = nn.Sequential(nn.Linear(trans_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.omic = snn_encoder(sum(self.omics_sizes), hidden, dropout)
        self.mm, self.classifier = concat_fusion_head(hidden, n_bins)

    def _slide(self, x_path: Tensor) -> tuple[Tensor, Tensor]:
        n = x_path.shape[0]
        h = self.fc1(x_path).unsqueeze(0)
        side = math.ceil(math.sqrt(n))
        h = torch.cat([h, h[:, : side * side - n]], dim=1)  # pad the grid by repetition
        h = torch.cat([self.cls_token, h], dim=1)
        h, _ = self.layer1(h)
        h = self.pos(h, side)
        h, attn = self.layer2(h)
        patch_attn = attn[1 : n + 1].clamp(min=0)  # Nystrom rows can dip below zero
        return self.path_out(self.norm(h)[0, 0]), patch_attn / patch_attn.sum().clamp(min=1e-12)

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("transmil", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        ref = self.classifier.weight
        emb: dict[str, Tensor] = {}
        attention = None
        h_path, h_omic = ref.new_zeros(self.hidden), ref.new_zeros(self.hidden)
        if x_path is not None:
            h_path, attention = self._slide(x_path)
            attention = attention.detach()
            emb[PATHOLOGY] = h_path.detach().unsqueeze(0)
        if x_omics is not None:
            h_omic = self.omic(torch.cat([g.reshape(-1) for g in x_omics]))
            emb[GENOMICS] = h_omic.detach().unsqueeze(0)
        h = self.mm(torch.cat([h_path, h_omic]).unsqueeze(0))
        emb["fusion"] = h.detach()
        return ModelOutput(self.classifier(h), zero_loss(h), attention, emb)

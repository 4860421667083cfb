"""ME-Mamba: Multi-Expert Mamba for multimodal survival analysis (paper section 3).

Resolutions of what the paper leaves open:

- Inputs: patch features ``path_dim -> dim`` by Linear-ReLU-Dropout; each of the six genomic
  groups by a two-layer SNN (Linear-ELU-AlphaDropout, ``F_g -> dim -> dim``): six tokens.
- Pathology and Genomics Experts (separate parameters): ``n_layers`` Attention-based Mamba
  Layers (eqs. 6-14) and a final LayerNorm. A layer normalises the tokens once (LayerNorm),
  reads them in three orders - original (OS), transposed (TS) and attention (AS) - and runs one
  Mamba branch per order (Linear -> causal Conv1d -> SiLU -> SSM, gated by SiLU(Linear)); the
  input and output Linears are shared across branches (MambaMIL's SRMamba), conv/SSM parameters
  are per branch. Branch outputs are restored to token order, summed, projected and added to the
  input. Orders (``ts_order``, default ``"spatial"``): with patch coordinates (``coords``, um)
  OS is the patches' row-major order on the tile grid (slide by slide, rows top to bottom, each
  row left to right: :func:`wsirisk.models.spatial.row_major_order`, the tiler's own order), and
  the spatial TS reads the tissue top to bottom, column after column (sort by slide, x, then y:
  :func:`~wsirisk.models.spatial.column_major_order`), as ME-Mamba's Fig. 1a draws it.
  ``ts_order="stride"`` is MambaMIL's SR order, which the paper's text follows: the OS sequence
  is laid out in rows of ``stride`` tokens and read column-wise, with
  ``stride = min(transpose_stride, max(2, ceil(sqrt(n))))`` so six genomic tokens become
  0,3,1,4,2,5; padding positions are skipped instead of being scanned. The default is spatial
  because a stride of 10 puts tokens 10 apart in the bag next to each other, which on a real
  slide (rows of varying length) are not vertical neighbours; the spatial TS gives every patch
  its tissue neighbours above and below. Genomic tokens have no coordinates, and a bag given
  without ``coords`` keeps its bag order as OS: both use the stride TS. AS sorts the
  tokens by descending gated-ABMIL scores of the layer input; since a sort has no gradient, the
  scorer is trained through a straight-through factor ``1 + a - stopgrad(a)`` (``a`` the softmax
  attention) on the normalised tokens, which leaves the forward pass unchanged.
- Synergistic Expert: cosine cost between expert outputs ``X_p`` (n tokens) and ``X_g`` (m).
  Pathology -> genomics (eqs. 18-19, genomics anchor): genomic token j receives the mean of the
  pathology tokens whose nearest genomic token is j, or its own nearest pathology token if none;
  genomics -> pathology: pathology token i receives its nearest genomic token. Global fusion is
  eq. 22, ``MMD^2(X'_p, X'_g) + MMD^2(X'_g, X'_p)`` with a sum of Gaussian kernels (the paper
  names one kernel and no sigma: kernel i has sigma^2 = ``mmd_bandwidths[i]`` times the median
  squared pairwise distance; default five, 0.25-4; ``[1.0]`` is a single kernel, which lets the
  training loss fall but did not score higher on the 200-patient development cohort, see
  docs/benchmarks-models.md), each estimate on at most ``mmd_samples`` tokens sampled per set,
  so memory stays linear in patches. The two fused sets are interleaved
  ``[p'_1, g'_1, p'_2, g'_2, ...]`` and the rest of the longer one appended (eq. 23), then
  ``n_fusion_layers`` BiMamba layers (forward + backward scans, summed) and a LayerNorm.
- Aggregation: the three expert sequences are concatenated along tokens -> gated ABMIL pooling
  -> rho (Linear-ReLU-Dropout) -> Linear -> ``n_bins`` hazard logits (hazards = sigmoid). The
  training loss is the discrete-time NLL plus ``aux_loss = mmd_weight * L_global``.
- Missing modality: without a slide or without omics the absent expert is skipped and so is the
  Synergistic Expert; aggregation runs over the tokens that exist.
- Read-outs: ``attention`` is the aggregation attention of the pathology-expert tokens,
  renormalised to sum 1; ``embeddings`` holds one (1, dim) vector per expert ("pathology",
  "genomics", "fusion"): the expert's tokens pooled with the aggregation attention restricted to
  them and renormalised.
- Memory (not in the paper): every Mamba layer is streamed and recomputed chunk by chunk in
  the backward pass (see :mod:`wsirisk.models.mamba`), and the gated-attention scorers (AS
  order, aggregation) recompute their hidden layer in token chunks, so a training step stores
  O(tokens x dim) floats per layer.
- Ablations (paper Tables 3-4, Fig. 7): ``scans`` (any of "os", "ts", "as"), ``synergistic``,
  ``local_fusion`` (OT; off -> the expert outputs are interleaved as they are), ``global_fusion``
  (MMD), ``fusion_scan`` ("interleave", "path_first", "genomics_first") and
  ``fusion_bidirectional`` (BiMamba vs Mamba); ``ts_order`` ("spatial", "stride").
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import (
    GENOMICS,
    PATHOLOGY,
    AttentionPool,
    GatedAttention,
    ModelOutput,
    MultimodalModel,
    check_inputs,
    patch_fc,
    snn_encoder,
)
from .losses import mmd2
from .mamba import DEFAULT_STREAM_CHUNK, BiMambaLayer, MambaLayer, MultiOrderMamba
from .spatial import column_major_order, row_major_order

SCANS = ("os", "ts", "as")
FUSION_SCANS = ("interleave", "path_first", "genomics_first")
TS_ORDERS = ("spatial", "stride")
MMD_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)  # kernel sigma^2 / median squared distance


def transposed_order(n: int, stride: int = 10, device: torch.device | None = None) -> Tensor:
    """MambaMIL transposed order: rows of ``s`` tokens read column-wise, padding skipped.

    ``s = min(stride, max(2, ceil(sqrt(n))))`` so that short sequences are really reordered.
    """
    s = min(stride, max(2, math.ceil(math.sqrt(max(n, 1)))))
    rows = math.ceil(n / s)
    idx = torch.arange(rows * s, device=device).view(rows, s).t().reshape(-1)
    return idx[idx < n]


def restore(y: Tensor, order: Tensor) -> Tensor:
    """Put rows of ``y`` (computed in ``order``) back to token order: ``out[order] = y``."""
    out = torch.empty_like(y)
    out[order] = y
    return out


def base_orders(
    n: int,
    coords: Tensor | None = None,
    ts_order: str = "spatial",
    transpose_stride: int = 10,
    device: torch.device | None = None,
) -> dict[str, Tensor]:
    """The OS and TS permutations (n,) of ``n`` tokens (see the module docstring).

    With ``coords`` (n, 2) um: OS is row-major on the tile grid; TS is column-major
    (``"spatial"``) or MambaMIL's stride order over the OS sequence (``"stride"``). Without
    coords: OS is the identity and TS the stride order.
    """
    if ts_order not in TS_ORDERS:
        raise ValueError(f"ts_order must be one of {TS_ORDERS}, got {ts_order!r}")
    if coords is None:
        os_ = torch.arange(n, device=device)
        return {"os": os_, "ts": transposed_order(n, transpose_stride, device)}
    if coords.shape != (n, 2):
        raise ValueError(f"coords must be ({n}, 2) to match the tokens, got {tuple(coords.shape)}")
    os_ = row_major_order(coords).to(device)
    if ts_order == "spatial":
        return {"os": os_, "ts": column_major_order(coords).to(device)}
    return {"os": os_, "ts": os_[transposed_order(n, transpose_stride, device)]}


class AttentionMambaLayer(nn.Module):
    """Attention-based Mamba Layer (eqs. 6-14) with a subset of the OS/TS/AS scans."""

    def __init__(
        self,
        dim: int,
        scans: Iterable[str] = SCANS,
        dropout: float = 0.25,
        transpose_stride: int = 10,
        stream_chunk: int = DEFAULT_STREAM_CHUNK,
    ) -> None:
        super().__init__()
        self.scans = tuple(scans)
        if not self.scans or any(s not in SCANS for s in self.scans):
            raise ValueError(f"scans must be a non-empty subset of {SCANS}, got {self.scans}")
        self.transpose_stride = transpose_stride
        self.mixer = MultiOrderMamba(dim, len(self.scans), stream_chunk=stream_chunk)
        self.scorer = (
            GatedAttention(dim, dim, dropout, checkpoint=True) if "as" in self.scans else None
        )

    def orders(
        self, x: Tensor, base: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Scan orders (K, n) and, with AS, the softmax attention (n,) of the input tokens.

        ``base`` holds the OS and TS permutations (:func:`base_orders`); None means the bag
        order and the stride TS.
        """
        n = x.shape[0]
        if base is None:
            base = base_orders(n, None, "stride", self.transpose_stride, x.device)
        rows, attn = [], None
        for s in self.scans:
            if s in base:
                rows.append(base[s])
            else:
                assert self.scorer is not None
                attn = torch.softmax(self.scorer(x), dim=0)
                rows.append(torch.argsort(attn.detach(), descending=True, stable=True))
        return torch.stack(rows), attn

    def forward(self, x: Tensor, base: dict[str, Tensor] | None = None) -> Tensor:
        orders, attn = self.orders(x, base)
        # straight-through factor on the normalised tokens: value 1, gradient to the AS scorer
        scale = None if attn is None else 1.0 + attn - attn.detach()
        return x + self.mixer(x, orders, scale)


class UnimodalExpert(nn.Module):
    """Pathology or Genomics Expert: stacked Attention-based Mamba Layers + LayerNorm.

    ``forward(x, coords=None)``: the OS/TS orders are computed once from ``coords`` (or the
    bag order) with ``ts_order`` and shared by every layer.
    """

    def __init__(
        self, dim: int, n_layers: int, ts_order: str = "spatial", **layer_kwargs: object
    ) -> None:
        super().__init__()
        if ts_order not in TS_ORDERS:
            raise ValueError(f"ts_order must be one of {TS_ORDERS}, got {ts_order!r}")
        self.ts_order = ts_order
        self.layers = nn.ModuleList(
            AttentionMambaLayer(dim, **layer_kwargs)  # type: ignore[arg-type]
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, coords: Tensor | None = None) -> Tensor:
        stride = self.layers[0].transpose_stride
        base = base_orders(x.shape[0], coords, self.ts_order, stride, x.device)
        for layer in self.layers:
            x = layer(x, base)
        return self.norm(x)


def ot_fuse(xp: Tensor, xg: Tensor) -> tuple[Tensor, Tensor]:
    """Local fusion by the simplified OT of eqs. 15-19 with cosine cost.

    Returns ``X'_p`` (m, d): per genomic token, the mean of the pathology tokens that chose it
    as nearest (its own nearest pathology token if none), and ``X'_g`` (n, d): per pathology
    token, its nearest genomic token.
    """
    sim = F.normalize(xp, dim=-1) @ F.normalize(xg, dim=-1).t()  # (n, m); cost = 1 - sim
    nearest_g = sim.argmax(dim=1)  # (n,)
    m = xg.shape[0]
    counts = torch.bincount(nearest_g, minlength=m).to(xp.dtype)
    sums = xp.new_zeros(m, xp.shape[1]).index_add(0, nearest_g, xp)
    own = xp[sim.argmax(dim=0)]  # (m, d) nearest pathology token of each genomic token
    xp_f = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], own)
    return xp_f, xg[nearest_g]


def interleave(a: Tensor, b: Tensor) -> Tensor:
    """``[a_1, b_1, a_2, b_2, ...]`` then the rest of the longer sequence."""
    k = min(a.shape[0], b.shape[0])
    head = torch.stack([a[:k], b[:k]], dim=1).reshape(2 * k, a.shape[1])
    return torch.cat([head, a[k:], b[k:]])


class SynergisticExpert(nn.Module):
    """Local (OT) + global (MMD) cross-modal fusion, then stacked (Bi)Mamba layers."""

    def __init__(
        self,
        dim: int,
        n_layers: int = 2,
        local_fusion: bool = True,
        global_fusion: bool = True,
        fusion_scan: str = "interleave",
        bidirectional: bool = True,
        mmd_samples: int = 512,
        mmd_bandwidths: tuple[float, ...] = MMD_BANDWIDTHS,
        stream_chunk: int = DEFAULT_STREAM_CHUNK,
    ) -> None:
        super().__init__()
        if fusion_scan not in FUSION_SCANS:
            raise ValueError(f"fusion_scan must be one of {FUSION_SCANS}, got {fusion_scan!r}")
        self.local_fusion, self.global_fusion = local_fusion, global_fusion
        self.fusion_scan = fusion_scan
        self.mmd_samples, self.mmd_bandwidths = mmd_samples, mmd_bandwidths
        make = (
            (lambda: BiMambaLayer(dim, stream_chunk=stream_chunk))
            if bidirectional
            else (lambda: MambaLayer(dim, 1, stream_chunk=stream_chunk))
        )
        self.layers = nn.ModuleList(make() for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, xp: Tensor, xg: Tensor) -> tuple[Tensor, Tensor]:
        """Fused token sequence (n + m, d) and the global alignment loss (eq. 22)."""
        xp_f, xg_f = ot_fuse(xp, xg) if self.local_fusion else (xp, xg)
        loss = xp.new_zeros(())
        if self.global_fusion:
            gen = None if self.training else torch.Generator().manual_seed(0)
            kw = {"bandwidths": self.mmd_bandwidths, "max_samples": self.mmd_samples}
            loss = mmd2(xp_f, xg_f, generator=gen, **kw) + mmd2(xg_f, xp_f, generator=gen, **kw)
        if self.fusion_scan == "interleave":
            seq = interleave(xp_f, xg_f)
        elif self.fusion_scan == "path_first":
            seq = torch.cat([xp_f, xg_f])
        else:
            seq = torch.cat([xg_f, xp_f])
        for layer in self.layers:
            seq = layer(seq)
        return self.norm(seq), loss


class MEMamba(MultimodalModel):
    """Multi-Expert Mamba survival model (see module docstring for every design choice)."""

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        dim: int = 256,
        n_layers: int = 2,
        n_fusion_layers: int = 2,
        scans: Iterable[str] | str = SCANS,
        synergistic: bool = True,
        local_fusion: bool = True,
        global_fusion: bool = True,
        fusion_scan: str = "interleave",
        fusion_bidirectional: bool = True,
        mmd_weight: float = 0.1,
        mmd_samples: int = 512,
        mmd_bandwidths: Iterable[float] = MMD_BANDWIDTHS,
        transpose_stride: int = 10,
        ts_order: str = "spatial",
        stream_chunk: int = DEFAULT_STREAM_CHUNK,
    ) -> None:
        super().__init__("me_mamba", path_dim, omics_sizes, dim)
        if isinstance(scans, str):
            scans = [s.strip() for s in scans.split(",") if s.strip()]
        self.mmd_weight = mmd_weight
        layer_kw = {
            "scans": tuple(scans),
            "dropout": dropout,
            "transpose_stride": transpose_stride,
            "stream_chunk": stream_chunk,
        }
        self.path_fc = patch_fc(path_dim, dim, dropout)
        self.omic_nets = nn.ModuleList(snn_encoder(n, dim, dropout) for n in self.omics_sizes)
        self.path_expert = UnimodalExpert(dim, n_layers, ts_order, **layer_kw)
        self.omic_expert = UnimodalExpert(dim, n_layers, ts_order, **layer_kw)
        self.synergistic = (
            SynergisticExpert(
                dim,
                n_fusion_layers,
                local_fusion,
                global_fusion,
                fusion_scan,
                fusion_bidirectional,
                mmd_samples,
                tuple(float(b) for b in mmd_bandwidths),
                stream_chunk=stream_chunk,
            )
            if synergistic
            else None
        )
        self.pool = AttentionPool(dim, dropout, checkpoint=True)
        self.classifier = nn.Linear(dim, n_bins)

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("me_mamba", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        parts: dict[str, Tensor] = {}
        if x_path is not None:
            parts[PATHOLOGY] = self.path_expert(self.path_fc(x_path), coords)
        if x_omics is not None:
            tokens = [net(g.reshape(-1)) for net, g in zip(self.omic_nets, x_omics, strict=True)]
            parts[GENOMICS] = self.omic_expert(torch.stack(tokens))
        aux = self.classifier.weight.new_zeros(())
        if self.synergistic is not None and len(parts) == 2:
            parts["fusion"], l_global = self.synergistic(parts[PATHOLOGY], parts[GENOMICS])
            aux = self.mmd_weight * l_global
        tokens = torch.cat(list(parts.values()))
        a = torch.softmax(self.pool.attn(tokens), dim=0)
        h = self.pool.rho(a @ tokens)
        logits = self.classifier(h.unsqueeze(0))
        emb, attention, start = {}, None, 0
        for name, seq in parts.items():
            w = a[start : start + seq.shape[0]]
            w = w / w.sum().clamp(min=1e-12)
            emb[name] = (w @ seq).detach().unsqueeze(0)
            if name == PATHOLOGY:
                attention = w.detach()
            start += seq.shape[0]
        return ModelOutput(logits, aux, attention, emb)

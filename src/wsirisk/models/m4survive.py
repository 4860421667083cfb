"""M4Survive: per-modality embeddings as tokens, a Mamba adapter over them, Cox loss (Lee et al.).

Equations implemented (paper section 2):

- eq. 2: each modality's embedding is projected to tokens of one joint width by a small
  two-layer encoder, ``T_m = MLP_m(F_m)``.
- eqs. 3-4: the tokens of all modalities, concatenated into one sequence, go through a Mamba
  adapter (selective SSM: ``h_{n+1} = A_d h_n + B(t_n) t_n``, ``y_n = C(t_n) h_n``), here
  ``n_layers`` residual pre-norm Mamba layers of :mod:`wsirisk.models.mamba` (the project's
  chunked scan; mamba-ssm's kernel on CUDA), then a LayerNorm.
- eq. 5: Cox partial likelihood over a batch, :func:`wsirisk.models.losses.cox_ph_loss`
  (``default_loss = "cox"``: the trainer's ``loss: auto`` picks it and builds batch-level risk
  sets over ``batch_size`` patients).
- eq. 6: ``h(t | m) = h0(t) exp(F(m))``; ``h0`` is Breslow's estimate on the training fold after
  training (the trainer calls :meth:`M4Survive.set_baseline`), stored in the ``baseline_cumhaz``
  buffer (the state dict) at the fold's bin edges, so ``logits`` give ``S(t | m) = exp(-H0(t)
  e^F)`` through :func:`wsirisk.models.survival_from_logits`.

Substitutions (the paper's inputs do not exist here) and resolutions of what it leaves open:

- Modalities: the paper fuses radiology (four MRI contrasts -> 4 tokens) and pathology (one
  slide-level foundation-model embedding -> 1 token). Here: pathology = the patch bag pooled to
  one embedding per slide (``path_tokens="slide"``; slides are told apart by the coordinates,
  which :func:`wsirisk.features.io.patient_coords_um` places 100 mm apart) or per patient
  (``"patient"``, also used when no coordinates are given), by the mean (``path_pool="mean"``,
  the stand-in for a frozen slide encoder) or gated attention (``"attention"``, learned); each
  pooled embedding becomes one token by a two-layer MLP (Linear-GELU-Dropout-Linear). Genomics =
  six tokens, one per category, each from a two-layer SNN (the zoo's omics MLP). Radiology has
  no source here: the modality list is open instead, ``extra_dims={name: n_features}`` adds one
  two-layer MLP per extra per-patient vector (``wsirisk extra`` builds the store), giving
  ``extra_tokens`` tokens each (the paper's 4 radiology tokens would be ``extra_tokens=4``).
- Token order (paper: radiology then pathology): extras in ``extra_dims`` order, pathology
  slides, then the six genomic tokens. A missing modality contributes no tokens; the scan runs
  over the tokens that exist (a patient with any one modality is scored).
- Adapter: unidirectional Mamba as in eqs. 3-4 (``bidirectional=True`` uses BiMamba layers),
  d_state 16, d_conv 4, expand 2, width ``dim``; read-out = mean of the adapter's output tokens
  (the paper does not say which token feeds the risk head) -> Linear -> ``F``.
- Hazard range: the paper says its scores lie in [-3, 3]; ``F = risk_bound * tanh(z /
  risk_bound)`` with ``risk_bound=3`` (None: unbounded).
- Loss normalisation: eq. 5 sums over events; ``cox_ph_loss`` takes the mean over the batch's
  events (Breslow ties) so the learning rate does not depend on how many deaths a batch holds.
- Before :meth:`set_baseline` (during training), ``baseline_cumhaz`` holds a placeholder
  (``H0`` rising linearly to ln 2 at the last edge); only ``risk`` is trained, never the logits.
- Read-outs: ``risk`` (1,) = ``F``; ``attention`` = the patch attention of the pooling when
  ``path_pool="attention"`` (sums to 1 over the bag), else None; ``embeddings`` = the adapter
  output of each modality's tokens (mean) and "fusion" (the pooled vector).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .common import GENOMICS, PATHOLOGY, GatedAttention, ModelOutput, check_inputs, snn_encoder
from .losses import cox_logits
from .mamba import DEFAULT_STREAM_CHUNK, BiMambaLayer, MambaLayer

PATH_POOLS = ("mean", "attention")
PATH_TOKENS = ("slide", "patient")


def slide_index(coords_um: Tensor, gap_um: float | None = None) -> Tensor:
    """Slide number (N,) of each patch of a patient's concatenated bag.

    :func:`wsirisk.features.io.patient_coords_um` shifts each slide past the previous ones by
    ``SLIDE_GAP_UM`` along x; a gap of more than half that between sorted x values starts a slide.
    """
    if gap_um is None:
        from wsirisk.features.io import SLIDE_GAP_UM

        gap_um = float(SLIDE_GAP_UM)
    x = coords_um[:, 0].to(torch.float64)
    xs = torch.sort(x).values
    cuts = xs[1:][torch.diff(xs) > gap_um / 2]
    return torch.searchsorted(cuts, x, right=True)


def _mlp(dim_in: int, dim_out: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(dim_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim_out)
    )


class M4Survive(nn.Module):
    """Token-per-modality Mamba adapter with a Cox head (see module docstring)."""

    default_loss = "cox"

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        dim: int = 128,
        n_layers: int = 2,
        bidirectional: bool = False,
        path_pool: str = "mean",
        path_tokens: str = "slide",
        extra_dims: Mapping[str, int] | None = None,
        extra_tokens: int = 1,
        risk_bound: float | None = 3.0,
        stream_chunk: int = DEFAULT_STREAM_CHUNK,
    ) -> None:
        super().__init__()
        if not omics_sizes:
            raise ValueError("m4survive needs omics_sizes")
        if path_pool not in PATH_POOLS:
            raise ValueError(f"path_pool must be one of {PATH_POOLS}, got {path_pool!r}")
        if path_tokens not in PATH_TOKENS:
            raise ValueError(f"path_tokens must be one of {PATH_TOKENS}, got {path_tokens!r}")
        if extra_tokens < 1:
            raise ValueError(f"extra_tokens must be >= 1, got {extra_tokens}")
        self.extra_dims = {str(k): int(v) for k, v in (extra_dims or {}).items()}
        clash = {PATHOLOGY, GENOMICS, "fusion"} & set(self.extra_dims)
        if clash:
            raise ValueError(f"extra modality names {sorted(clash)} are reserved")
        self.modalities: set[str] = {PATHOLOGY, GENOMICS, *self.extra_dims}
        self.path_dim, self.omics_sizes, self.hidden = path_dim, list(omics_sizes), dim
        self.path_pool, self.path_tokens = path_pool, path_tokens
        self.extra_tokens, self.risk_bound = extra_tokens, risk_bound
        self.pool_attn = (
            GatedAttention(path_dim, dim, dropout, checkpoint=True)
            if path_pool == "attention"
            else None
        )
        self.path_mlp = _mlp(path_dim, dim, dim, dropout)
        self.omic_nets = nn.ModuleList(snn_encoder(n, dim, dropout) for n in self.omics_sizes)
        self.extra_mlps = nn.ModuleDict(
            {name: _mlp(n, extra_tokens * dim, dim, dropout) for name, n in self.extra_dims.items()}
        )
        make = (
            (lambda: BiMambaLayer(dim, stream_chunk=stream_chunk))
            if bidirectional
            else (lambda: MambaLayer(dim, 1, stream_chunk=stream_chunk))
        )
        self.adapter = nn.ModuleList(make() for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)
        steps = torch.arange(1, n_bins + 1, dtype=torch.float32) / n_bins
        self.register_buffer("baseline_cumhaz", steps * math.log(2.0))

    @torch.no_grad()
    def set_baseline(self, cumhaz: Tensor | list[float]) -> None:
        """Store Breslow's ``H0`` at the bin edges 1..n_bins (the logits' survival curve)."""
        value = torch.as_tensor(cumhaz, dtype=self.baseline_cumhaz.dtype).reshape(-1)
        if value.shape != self.baseline_cumhaz.shape:
            raise ValueError(f"baseline must have {self.baseline_cumhaz.numel()} values")
        self.baseline_cumhaz.copy_(value.to(self.baseline_cumhaz.device))

    def _path_tokens(
        self, x_path: Tensor, coords: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """Pooled slide (or patient) embeddings (S, path_dim) and the patch attention or None."""
        n = x_path.shape[0]
        if self.path_tokens == "slide" and coords is not None:
            if coords.shape != (n, 2):
                raise ValueError(f"coords must be ({n}, 2), got {tuple(coords.shape)}")
            seg = slide_index(coords).to(x_path.device)
        else:
            seg = torch.zeros(n, dtype=torch.long, device=x_path.device)
        n_seg = int(seg.max()) + 1
        index = seg[:, None].expand(-1, x_path.shape[1])
        if self.pool_attn is None:
            sums = x_path.new_zeros(n_seg, x_path.shape[1]).scatter_add(0, index, x_path)
            counts = torch.bincount(seg, minlength=n_seg).to(x_path.dtype)
            return sums / counts[:, None], None
        scores = self.pool_attn(x_path)
        top = scores.new_full((n_seg,), -math.inf).scatter_reduce(0, seg, scores, "amax")
        w = torch.exp(scores - top[seg])
        w = w / w.new_zeros(n_seg).scatter_add(0, seg, w)[seg]  # softmax within each slide
        pooled = x_path.new_zeros(n_seg, x_path.shape[1]).scatter_add(0, index, w[:, None] * x_path)
        return pooled, (w / n_seg).detach()

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        given = {k: v for k, v in (extra or {}).items() if k in self.extra_dims and v is not None}
        if x_path is not None or x_omics is not None or not given:
            check_inputs("m4survive", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        parts: dict[str, Tensor] = {}
        for name, mlp in self.extra_mlps.items():
            if name in given:
                vec = given[name].reshape(-1)
                if vec.shape[0] != self.extra_dims[name]:
                    raise ValueError(
                        f"extra {name!r} must have {self.extra_dims[name]} values, "
                        f"got {vec.shape[0]}"
                    )
                parts[name] = mlp(vec).reshape(self.extra_tokens, self.hidden)
        attention = None
        if x_path is not None:
            pooled, attention = self._path_tokens(x_path, coords)
            parts[PATHOLOGY] = self.path_mlp(pooled)
        if x_omics is not None:
            parts[GENOMICS] = torch.stack(
                [net(g.reshape(-1)) for net, g in zip(self.omic_nets, x_omics, strict=True)]
            )
        seq = torch.cat(list(parts.values()))
        for layer in self.adapter:
            seq = layer(seq)
        seq = self.norm(seq)
        fused = seq.mean(dim=0)
        z = self.head(fused)
        eta = z if self.risk_bound is None else self.risk_bound * torch.tanh(z / self.risk_bound)
        emb, start = {}, 0
        for name, tokens in parts.items():
            emb[name] = seq[start : start + tokens.shape[0]].mean(dim=0, keepdim=True).detach()
            start += tokens.shape[0]
        emb["fusion"] = fused.detach().unsqueeze(0)
        logits = cox_logits(eta, self.baseline_cumhaz)
        return ModelOutput(logits, eta.new_zeros(()), attention, emb, risk=eta.reshape(1))

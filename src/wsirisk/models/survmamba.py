"""SurvMamba: hierarchical interaction Mamba with multi-grained fusion (SurvMamba paper, sec. 3).

What is implemented, by equation / algorithm:

- Sec. 3.3, hierarchical representations. Pathology: patches grouped into regions of 4096 px at
  20x (``region_um = 2048`` um squares, :func:`wsirisk.models.spatial.region_index`) from their
  coordinates; patch tokens ``f_I`` = Linear-ReLU-Dropout (``path_dim -> dim``). Genomics: a
  two-level gene hierarchy (gene -> function -> process, :mod:`wsirisk.models.gene_hierarchy`);
  function tokens ``f_G(F_jk)`` by a two-layer SNN per function.
- Eq. 5, fine level of the HIM: one Bi-Mamba (Algorithm 1: pre-LayerNorm, shared ``Linear^x``,
  ``Linear^z`` and ``Linear^T``, a forward and a backward branch with their own Conv1d and SSM,
  ``Y_fwd * SiLU(z) + Y_bwd * SiLU(z)``, residual) with parameters shared by all groups and run
  on each region / process separately: no state passes between groups.
- Eq. 6, coarse level: ``Pool`` of each group's fine tokens -> one token per region / process,
  then a second Bi-Mamba over the region (process) sequence.
- Eq. 7 and Algorithm 2, IFM at the fine level (patch tokens x function tokens) and at the
  coarse level (region tokens x process tokens): per modality a LayerNorm, its own ``Linear^x``
  and ``Linear^z``, causal Conv1d + SiLU and SSM over its own sequence; each modality's SSM
  output is gated by the *other* modality's ``SiLU(z)``; the two gated outputs are concatenated
  and projected (``Linear^T``: ``2E -> dim``).
- Eq. 8: ``H = alpha * H_f + (1 - alpha) * H_c`` with a learned ``alpha``; ``H`` -> Linear ->
  ``n_bins`` hazard logits; eq. 9, the discrete-time NLL (:func:`wsirisk.models.nll_loss`).
- Sec. 4: RAdam, lr 2e-4, weight decay 5e-3, batch 1 (``train.optimizer: radam``).

Resolutions of what the paper leaves open:

- Orders. A region's patches are read in row-major order (rows top to bottom, each left to
  right); regions in row-major order of the region grid, slide after slide (grid anchored at
  each slide's tissue origin; a patch belongs to the region holding its top-left corner).
  Without ``coords`` the bag order is kept and consecutive runs of ``region_patches`` (256 =
  16 x 16 tiles of 128 um) stand for regions. Functions are ordered by process, in order of first
  appearance of their features in the input; processes likewise.
- ``Pool`` is the mean over a group's fine tokens (symmetric, parameter-free).
- IFM with sequences of unequal length (Algorithm 2 assumes both are (B, M, D), but there are N
  patches and K functions): each modality's SSM runs over its own sequence and is mean-pooled;
  the gate of the other modality is ``SiLU`` of its mean-pooled ``z``. So
  ``h_I = mean_t(Y^I_t) * SiLU(mean_s z^G_s)``, ``h_G = mean_s(Y^G_s) * SiLU(mean_t z^I_t)``,
  ``H = Linear^T([h_I, h_G])`` - Algorithm 2 followed by mean pooling, exact when the lengths
  match and the gates are constant over tokens. ``Linear^x``/``Linear^z`` are per modality
  (the algorithm leaves ``x`` undefined and the modalities' token statistics differ). IFM is
  one block per level (no stack).
- One modality missing (or an ``ifm_*=False`` ablation): that level's IFM gates each present
  modality with its own ``SiLU(z)`` token by token (plain Mamba gating) and the missing half of
  the concatenation is zero; without pathology only the genomic hierarchy runs and vice versa.
- Genomic encoder: SurvMamba's per-function two-layer FFN, with the first layer per function
  (each function sees only its genes' features; a block-sparse Linear) and the second layer
  shared by all functions (a per-function second layer would cost dim^2 parameters per
  function: about 200M with genes as functions). SNN blocks (Linear-ELU-AlphaDropout, LeCun
  init) as in the project's other genomic encoders.
- ``alpha = sigmoid(a)`` with ``a`` learned from 0 (alpha 0.5), so it stays in [0, 1];
  ``alpha=<float>`` fixes it (ablation); ``fixed_alpha`` can be set on a built model.
- Sizes: ``dim`` 256 (the paper: 512), Mamba ``d_state`` 16, ``expand`` 2, ``d_conv`` 4.
- Memory and speed (not in the paper): on CPU the fine-level Bi-Mamba runs region by region
  through the streamed, chunk-recomputing Mamba layer; on CUDA regions of similar length run
  as one padded batch (:class:`GroupedBiMamba`); the IFM branches recompute in the backward
  pass, so a step stores O(N dim) floats.
- Read-outs: ``attention`` is None (mean pooling has no patch weights); ``embeddings`` holds
  "pathology" / "genomics" (mean of the coarse tokens), "fine" (``H_f``), "coarse" (``H_c``)
  and "fusion" (``H``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from .common import GENOMICS, PATHOLOGY, ModelOutput, check_inputs, patch_fc
from .gene_hierarchy import GeneHierarchy, build_hierarchy, read_gene_hierarchy
from .mamba import BiMambaLayer, MultiOrderMamba, mixer_core
from .scan import selective_scan
from .spatial import REGION_UM, region_index, row_major_order

REGION_PATCHES = 256  # 16 x 16 tiles of 256 px in a 4096 px region (no coords given)


def _checkpointed(fn, *args: Tensor) -> Tensor:  # type: ignore[no-untyped-def]
    """``fn(*args)``, recomputed in the backward pass when gradients are being recorded."""
    if torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def segment_mean(x: Tensor, group: Tensor, n_groups: int) -> Tensor:
    """Mean (G, d) of the rows of ``x`` in each group (``group`` (N,) in ``[0, G)``)."""
    sums = x.new_zeros(n_groups, x.shape[1]).index_add(0, group, x)
    counts = torch.bincount(group, minlength=n_groups).clamp(min=1).to(x.dtype)
    return sums / counts[:, None]


def _tile_params(params: Sequence[Tensor], reps: int) -> list[Tensor]:
    """:func:`mixer_core` parameters of a 2-branch mixer repeated for ``reps`` groups.

    Branch ``b = r * 2 + k`` of the result is branch ``k`` of the original (shared weights)."""
    ln_w, ln_b, w_in, conv_w, conv_b, w_x, w_dt, dt_bias, a_log, d_skip, w_out = params
    k = w_x.shape[0]

    def rep(p: Tensor) -> Tensor:
        return p.reshape(k, -1, *p.shape[1:]).repeat(reps, *([1] * p.dim())).flatten(0, 1)

    return [
        ln_w, ln_b, w_in, rep(conv_w), rep(conv_b), w_x.repeat(reps, 1, 1),
        w_dt.repeat(reps, 1, 1), rep(dt_bias), rep(a_log), rep(d_skip), w_out,
    ]  # fmt: skip


class GroupedBiMamba(nn.Module):
    """Eq. 5: a Bi-Mamba (Algorithm 1) with one set of weights run on each group separately.

    ``forward(x, group, n_groups)``: ``x`` (N, dim) tokens, ``group`` (N,) their group; within a
    group tokens are read in their order in ``x``; no state passes from one group to the next.

    Two equivalent execution paths (``batched``; None = batched on CUDA only):

    - one group at a time through the project's streamed :class:`BiMambaLayer` (CPU: the scan's
      cost per block grows with the channels of one call, so one group per call keeps its
      blocks long and its stored states O(n d); every layer recomputes chunk by chunk);
    - groups of similar length batched as one call (sorted by length, each padded at its end to
      the longest of its batch, at most ``group_tokens`` padded tokens per batch; the forward
      branch reads a group's tokens then padding, the backward branch the tokens reversed then
      padding, so padding never reaches a real token), recomputed per batch in backward.
    """

    def __init__(self, dim: int, group_tokens: int = 4096, batched: bool | None = None) -> None:
        super().__init__()
        self.layer = BiMambaLayer(dim)
        self.group_tokens = group_tokens
        self.batched = batched

    def forward(self, x: Tensor, group: Tensor, n_groups: int) -> Tensor:
        order = torch.argsort(group, stable=True)
        counts = torch.bincount(group, minlength=n_groups)
        batched = x.is_cuda if self.batched is None else self.batched
        if batched:
            return self._batched(x, order, counts)
        parts = [self.layer(x[idx]) for idx in order.split(counts.tolist()) if idx.numel()]
        out = torch.empty_like(x) if not parts else torch.cat(parts)
        return out.new_empty(out.shape).index_copy(0, order, out)

    def _batches(self, counts: Tensor) -> list[Tensor]:
        by_len = torch.argsort(counts, descending=True, stable=True)
        by_len = by_len[counts[by_len] > 0]
        out, start = [], 0
        lengths = counts[by_len].tolist()
        while start < len(lengths):
            size = max(1, self.group_tokens // max(1, lengths[start]))
            out.append(by_len[start : start + size])
            start += size
        return out

    def _batched(self, x: Tensor, order: Tensor, counts: Tensor) -> Tensor:
        n, d = x.shape
        starts = torch.cumsum(counts, 0) - counts
        x_ext = torch.cat([x, x.new_zeros(1, d)])  # row n: the padding token
        order_ext = torch.cat([order, order.new_tensor([n])])
        mixer = self.layer.mixer
        idx_all, y_all = [], []
        for groups in self._batches(counts):
            lens, first = counts[groups], starts[groups]
            t = torch.arange(int(lens.max()), device=x.device)
            real = t[None, :] < lens[:, None]
            fwd = torch.where(real, first[:, None] + t[None, :], n)
            bwd = torch.where(real, first[:, None] + lens[:, None] - 1 - t[None, :], n)
            idx = order_ext[torch.stack([fwd, bwd], dim=1).flatten(0, 1)]  # (2R, T)
            y_all.append(_checkpointed(self._run, x_ext, idx, *mixer.params()))
            idx_all.append(idx.reshape(-1))
        y = x_ext.new_zeros(n + 1, d).index_add(0, torch.cat(idx_all), torch.cat(y_all))
        return x + y[:n]

    def _run(self, x_ext: Tensor, idx: Tensor, *params: Tensor) -> Tensor:
        mixer: MultiOrderMamba = self.layer.mixer
        branches = idx.shape[0]
        tiled = _tile_params(params, branches // 2)
        tail = x_ext.new_zeros(branches, mixer.d_inner, mixer.conv_weight.shape[-1] - 1)
        y, _, _ = mixer_core(x_ext[idx], None, tail, None, tiled, mixer.d_state)
        return y.reshape(-1, y.shape[-1])


class HIM(nn.Module):
    """Hierarchical Interaction Mamba for one modality (eqs. 5-6)."""

    def __init__(self, dim: int, group_tokens: int = 4096) -> None:
        super().__init__()
        self.fine = GroupedBiMamba(dim, group_tokens)
        self.coarse = BiMambaLayer(dim)

    def forward(self, x: Tensor, group: Tensor, n_groups: int) -> tuple[Tensor, Tensor]:
        """Fine tokens (N, dim) (input order) and coarse tokens (G, dim) (group order)."""
        fine = self.fine(x, group, n_groups)
        return fine, self.coarse(segment_mean(fine, group, n_groups))


class IFM(nn.Module):
    """Interaction Fusion Mamba (Algorithm 2) for sequences of any two lengths.

    ``forward(a, b)`` -> ``(H (dim,), (h_a, h_b))`` with ``h_a = mean(Y^a) * SiLU(mean(z^b))``
    (and symmetrically) when ``cross`` and both are given; otherwise each present modality is
    gated by its own ``SiLU(z)`` token by token and an absent one contributes zeros.
    """

    def __init__(self, dim: int, cross: bool = True, **mixer_kwargs: float) -> None:
        super().__init__()
        # one Mamba branch per modality (Mamba's initialisation); their own output
        # projections are replaced by the joint Linear^T below
        self.branches = nn.ModuleList(
            MultiOrderMamba(dim, 1, **mixer_kwargs)  # type: ignore[arg-type]
            for _ in range(2)
        )
        for branch in self.branches:
            del branch.out_proj
        self.d_inner = self.branches[0].d_inner
        self.out = nn.Linear(2 * self.d_inner, dim)
        self.cross = cross

    def _ssm(self, k: int, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Ungated SSM output Y (T, E) and gate pre-activation z (T, E) of branch ``k``."""
        m: MultiOrderMamba = self.branches[k]
        params = [m.norm.weight, m.norm.bias, m.in_proj.weight, m.conv_weight, m.conv_bias]
        params += [m.x_proj_weight, m.dt_proj_weight, m.dt_bias, m.A_log, m.D]
        return _checkpointed(lambda t, *p: self._ssm_core(m, t, *p), tokens, *params)

    @staticmethod
    def _ssm_core(m: MultiOrderMamba, tokens: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
        ln_w, ln_b, w_in, conv_w, conv_b, w_x, w_dt, dt_bias, a_log, d_skip = params
        di, n_state = m.d_inner, m.d_state
        rank = w_dt.shape[1]
        h = F.layer_norm(tokens, (tokens.shape[1],), ln_w, ln_b)
        xc, z = (h @ w_in.t()).split(di, dim=-1)  # (T, E) each
        length = tokens.shape[0]
        u = F.silu(F.conv1d(xc.t().unsqueeze(0), conv_w, conv_b, padding=conv_w.shape[-1] - 1,
                            groups=di)[..., :length])  # fmt: skip
        x_dbl = u[0].t() @ w_x[0]  # (T, rank + 2N)
        dt_low, b_sel, c_sel = x_dbl.split([rank, n_state, n_state], dim=-1)
        delta = (dt_low @ w_dt[0]).t().unsqueeze(0)  # (1, E, T)
        y = selective_scan(
            u, delta, -torch.exp(a_log.float()), b_sel.t().unsqueeze(0).contiguous(),
            c_sel.t().unsqueeze(0).contiguous(), D=d_skip.float(), delta_bias=dt_bias.float(),
            delta_softplus=True,
        )  # fmt: skip
        return y[0].t(), z  # type: ignore[index]

    def forward(
        self, a: Tensor | None, b: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:  # fmt: skip
        ref = self.out.weight
        outs = [None if t is None else self._ssm(k, t) for k, t in enumerate((a, b))]
        h = [ref.new_zeros(self.d_inner), ref.new_zeros(self.d_inner)]
        both = outs[0] is not None and outs[1] is not None
        for k, pair in enumerate(outs):
            if pair is None:
                continue
            y, z = pair
            if self.cross and both:
                other = outs[1 - k][1]  # type: ignore[index]
                h[k] = y.mean(0) * F.silu(other.mean(0))
            else:
                h[k] = (y * F.silu(z)).mean(0)
        return self.out(torch.cat(h)), (h[0], h[1])


class FunctionEncoder(nn.Module):
    """Function tokens: a two-layer SNN per function, the first layer per function (block-sparse
    over its member features), the second shared; LeCun-normal init, zero biases."""

    def __init__(self, hierarchy: GeneHierarchy, dim: int, dropout: float = 0.25) -> None:
        super().__init__()
        feat = torch.tensor([f for f, _ in hierarchy.members], dtype=torch.long)
        func = torch.tensor([k for _, k in hierarchy.members], dtype=torch.long)
        self.n_functions = len(hierarchy.functions)
        self.register_buffer("feature", feat, persistent=False)
        self.register_buffer("function", func, persistent=False)
        fan_in = torch.bincount(func, minlength=self.n_functions).float()
        std = fan_in[func].rsqrt()[:, None]
        self.weight = nn.Parameter(torch.randn(len(func), dim) * std)
        self.bias = nn.Parameter(torch.zeros(self.n_functions, dim))
        self.act1 = nn.Sequential(nn.ELU(), nn.AlphaDropout(dropout))
        self.shared = nn.Sequential(nn.Linear(dim, dim), nn.ELU(), nn.AlphaDropout(dropout))
        nn.init.normal_(self.shared[0].weight, 0.0, 1.0 / math.sqrt(dim))
        nn.init.zeros_(self.shared[0].bias)

    def forward(self, values: Tensor) -> Tensor:
        """``values`` (F,) the six input vectors concatenated -> (n_functions, dim)."""
        contrib = values[self.feature][:, None] * self.weight
        h = self.bias.index_add(0, self.function, contrib)
        return self.shared(self.act1(h))


class SurvMamba(nn.Module):
    """SurvMamba survival model (see the module docstring for every equation and choice)."""

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        dim: int = 256,
        region_um: float = REGION_UM,
        region_patches: int = REGION_PATCHES,
        alpha: float | None = None,
        ifm_fine: bool = True,
        ifm_coarse: bool = True,
        feature_names: list[list[str]] | None = None,
        hierarchy: str | list[list[str]] | None = None,
        group_tokens: int = 4096,
    ) -> None:
        super().__init__()
        if not omics_sizes:
            raise ValueError("survmamba needs omics_sizes")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] or None (learned), got {alpha}")
        self.modalities: set[str] = {PATHOLOGY, GENOMICS}
        self.path_dim, self.omics_sizes, self.hidden = path_dim, list(omics_sizes), dim
        self.region_um, self.region_patches = region_um, region_patches
        rows = read_gene_hierarchy(hierarchy) if isinstance(hierarchy, str) else hierarchy
        self.hierarchy = build_hierarchy(self.omics_sizes, feature_names, rows)
        self.feature_names = feature_names
        proc = torch.tensor(self.hierarchy.function_process, dtype=torch.long)
        self.register_buffer("function_process", proc, persistent=False)
        self.path_fc = patch_fc(path_dim, dim, dropout)
        self.function_encoder = FunctionEncoder(self.hierarchy, dim, dropout)
        self.him_path = HIM(dim, group_tokens)
        self.him_omic = HIM(dim, group_tokens)
        self.ifm_fine = IFM(dim, cross=ifm_fine)
        self.ifm_coarse = IFM(dim, cross=ifm_coarse)
        self.alpha_logit = nn.Parameter(torch.zeros(()))
        self.fixed_alpha = alpha
        self.classifier = nn.Linear(dim, n_bins)

    def portable_kwargs(self, kwargs: dict) -> dict:
        """``kwargs`` with a hierarchy path replaced by the rows used (checkpoints need no file)."""
        out = dict(kwargs)
        if isinstance(out.get("hierarchy"), str):
            out["hierarchy"] = self.hierarchy.rows
        return out

    def alpha(self) -> Tensor:
        """Eq. 8's ``alpha`` (learned ``sigmoid(a)`` unless ``fixed_alpha`` is set)."""
        if self.fixed_alpha is not None:
            return self.alpha_logit.new_tensor(float(self.fixed_alpha))
        return torch.sigmoid(self.alpha_logit)

    def regions(self, n: int, coords: Tensor | None, device: torch.device) -> tuple[Tensor, Tensor, int]:  # fmt: skip
        """``(order, region, n_regions)``: patch reading order (N,) and each read patch's region."""
        if coords is None:
            order = torch.arange(n, device=device)
            region = order // self.region_patches
            return order, region, int(region[-1]) + 1
        if coords.shape != (n, 2):
            raise ValueError(f"coords must be ({n}, 2) to match x_path, got {tuple(coords.shape)}")
        region, n_regions = region_index(coords.cpu(), self.region_um)
        order = row_major_order(coords.cpu())
        order = order[torch.argsort(region[order], stable=True)]
        return order.to(device), region[order].to(device), n_regions

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("survmamba", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        fine: dict[str, Tensor] = {}
        coarse: dict[str, Tensor] = {}
        if x_path is not None:
            order, region, n_regions = self.regions(x_path.shape[0], coords, x_path.device)
            tokens = self.path_fc(x_path[order])
            fine[PATHOLOGY], coarse[PATHOLOGY] = self.him_path(tokens, region, n_regions)
        if x_omics is not None:
            values = torch.cat([g.reshape(-1) for g in x_omics])
            tokens = self.function_encoder(values)
            n_proc = len(self.hierarchy.processes)
            fine[GENOMICS], coarse[GENOMICS] = self.him_omic(tokens, self.function_process, n_proc)
        h_f, _ = self.ifm_fine(fine.get(PATHOLOGY), fine.get(GENOMICS))
        h_c, _ = self.ifm_coarse(coarse.get(PATHOLOGY), coarse.get(GENOMICS))
        alpha = self.alpha()
        h = alpha * h_f + (1 - alpha) * h_c
        logits = self.classifier(h.unsqueeze(0))
        emb = {name: t.mean(0, keepdim=True).detach() for name, t in coarse.items()}
        emb.update(
            fine=h_f.detach().unsqueeze(0),
            coarse=h_c.detach().unsqueeze(0),
            fusion=h.detach().unsqueeze(0),
        )
        return ModelOutput(logits, logits.new_zeros(()), None, emb)

"""AdaMHF: Adaptive Multimodal Hierarchical Fusion (Zhang et al.), paper section II + supplement.

Equations implemented:

- Inputs (II-A): patches ``path_dim -> dim`` (Linear-ReLU-Dropout); genomics as six tokens,
  one per category, each from a two-layer SNN (``F_g -> dim -> dim``).
- Segregation unit, per modality (eqs. 2-3): a learned class token is prepended; two stages of
  ``Transformer Block`` then PREE, with the EPEG positional convolution between them for
  pathology (II-B).
- PREE (II-C): ``pree_experts`` layers (default 1, 2, 4 experts). Layer ``l``:
  ``x <- x + MLP_l(LN x) + p_e(LN x) E_e(LN x)`` with ``e = argmax softmax(Gate_l(LN x))``
  chosen per token (top-1: each token runs through exactly one expert; the gate gets its
  gradient through the chosen probability ``p_e``, as in Switch Transformers). Experts are
  "CNNs" for pathology (a depthwise convolution of width 3 over the token sequence, then a
  pointwise two-layer MLP, evaluated only at the tokens routed to the expert) and SNNs for
  genomics. A layer with one expert has no gate.
- ATSA (II-D, eqs. 10-14) on the non-class tokens of each modality: ``z_i = [MLP(x_i), MLP(x_cls)]``
  (eq. 10), ``s = softmax_i(MLP(z_i))`` (eq. 11), the Top-K tokens by ``s`` (eq. 12); the Selective
  Refiner's ratio ``alpha`` keeps the best ``round(alpha K)`` tokens unchanged and adaptive
  average pooling (in score order) turns the rest of the Top-K and, with ``atsa_preserve``, the
  non-Top-K tokens (eq. 13) into ``K - round(alpha K)`` tokens (at least 1); the output is the
  kept tokens followed by the pooled ones (eq. 14). ``K`` (Priority Allocator) and ``alpha``
  (Selective Refiner) come from small routers on the class token (supplement D), or are fixed
  with ``atsa_k`` / ``atsa_alpha``.
- Cross attention (supplement K, eqs. 18-21): ``V = x_p W_p1``, ``U = x_g W_g1``,
  ``X = V U^T / sqrt(dim)``, ``P`` = softmax over pathology tokens (columns), ``G`` = softmax
  over genomic tokens (rows), ``x_p* = P^T x_p W_p2`` (one token per genomic token),
  ``x_g* = G x_g W_g2`` (one per pathology token).
- Integration unit (eq. 5 ff.): the same structure as the segregation unit (separate weights)
  on ``[cls; x_p*]`` and ``[cls; x_g*]``.
- Hierarchical fusion: local = low-rank multimodal fusion (eq. 15, LMF) of the mean integration
  tokens of each modality, ``sum_r (W_p^r [x_p; 1]) o (W_g^r [x_g; 1])``, rank ``lmf_rank``;
  global = ``MLP(x_g^cls* (+) x_p^cls*)`` (eq. 7); ``x = (1 - beta) global + beta local``
  (eq. 8); hazards ``sigmoid(Linear(x))`` (eq. 9).
- Loss (eq. 1 + supplement eq. 17): discrete-time NLL (the trainer) + ``aux_loss =
  align_weight * mean_d |x_p^cls* - x_g^cls*|`` (the L1 alignment of the two class tokens).

Where the paper is silent or cannot be followed, and what is done here:

- Class tokens: one per modality, carried through both units (ATSA and the cross attention act
  on the other tokens; the integration unit starts from the segregation unit's class token).
- "Fixed MLP" of PREE: the paper freezes an MLP copied from the first block of an ImageNet
  ViT-L (1024-d), which cannot be fetched here and does not match ``dim``; ours is a
  trainable two-layer MLP (GELU, hidden ``dim``), with a pre-norm identity residual around the
  layer (not stated in the paper) for stable stacking.
- Routing granularity: the paper selects "a single expert at each layer"; routing here is per
  token (the authors' release routes per patient on the mean token). No load-balancing loss
  (none in the paper); ``last_counts`` of each PREE layer records the tokens each expert got.
- Transformer Block: pre-norm residual Nystrom self-attention (TransMIL's, 8 heads, ``dim // 2``
  landmarks, as the authors' release); exact softmax attention for sequences no longer than
  the landmark count. EPEG: a depthwise convolution of width 15 along the columns of the
  square token grid (``dilation = ceil(sqrt(n))`` on the sequence; zero padding instead of
  the grid's repeated tokens), added residually.
- Token order: patches in the stored bag order (row-major per slide as ``wsirisk tile`` writes
  them); ``coords`` are not used (the paper's positional encoding is the EPEG convolution).
- ATSA: scores and the K/alpha routers have no gradient through a discrete selection; each
  token is scaled by ``1 + D(s_i) + [r_i < K] D(sigmoid(K' - r_i - 1/2)) + [r_i < k_keep]
  D(sigmoid(alpha K' - r_i - 1/2))``, ``D(u) = u - stopgrad(u)``, ``r_i`` the token's rank and
  ``K'`` the router's continuous K: value 1 (the forward pass is exactly the discrete rule),
  straight-through gradients to the scorer and both routers. ``K`` lies in
  ``[1, min(n, atsa_k_max)]``; the scorer MLPs reduce to ``dim // 2``.
  ``atsa_preserve=False`` is the paper's "w/o preserving strategy" ablation: the non-Top-K
  tokens are dropped and the output does not depend on them.
- Cross-attention scaling by ``1/sqrt(dim)`` (standard; the paper prints none).
- LMF: eq. 15's last line sums the rank factors before the product, which collapses to rank 1;
  the LMF definition (sum of products, Liu et al. 2018, with the appended constant 1) is used.
  The tokens of each modality are mean-pooled first (the two sets differ in length).
- ``beta = 0.2`` (the supplement's best on LUAD; Table V uses 0.05-0.2 per cohort); alignment
  ``align_weight = 0.1`` (Table V, BLCA and LUAD); L1 as a mean over dimensions.
- Missing modality (the paper's benchmark trains complete and drops a modality at inference;
  it does not say what enters the network): an absent modality is fed as "no information"
  inputs - one all-zero patch feature for pathology, six all-zero group vectors for genomics
  (the training-fold mean after the project's z-scoring, i.e. every cell imputed) - and the
  whole network runs unchanged; ATSA's routers see the class token and can shrink K for it (the
  paper's "tokens from missing modalities are significantly reduced"). The alignment loss is
  skipped and the absent modality has no embedding and no attention. Patients with one modality
  train and are scored. ``modality_dropout`` (ours, default 0 as in the paper) replaces one
  modality of a complete training patient by its absent input with that probability.
- Memory (not in the paper): over more than ``checkpoint_tokens`` tokens (1024), each part of
  a unit (Transformer Block, EPEG, PREE layer) is recomputed in the backward pass (activation
  checkpointing), so a 10k-patch step keeps one (n, dim) tensor per part instead of every
  intermediate.
- Read-outs: ``attention`` = ATSA's pathology scores ``s`` (sum 1 over the bag);
  ``embeddings``: "pathology" and "genomics" = the integration unit's class tokens, "fusion" =
  the mixed vector of eq. 8.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from .common import (
    GENOMICS,
    PATHOLOGY,
    ModelOutput,
    MultimodalModel,
    check_inputs,
    patch_fc,
    snn_block,
    snn_encoder,
    snn_init,
)
from .transmil import NystromAttention


def _st(u: Tensor) -> Tensor:
    """Straight-through term: value 0, gradient of ``u``."""
    return u - u.detach()


class TransformerBlock(nn.Module):
    """Pre-norm residual self-attention: Nystrom for long sequences, exact for short ones."""

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, heads=heads, landmarks=dim // 2, dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x).unsqueeze(0)
        if x.shape[0] > self.attn.landmarks:
            return x + self.attn(h)[0][0]
        a = self.attn
        q, k, v = (
            t.reshape(1, -1, a.heads, a.dim_head).transpose(1, 2)
            for t in a.to_qkv(h).chunk(3, dim=-1)
        )
        w = torch.softmax((q * a.dim_head**-0.5) @ k.transpose(-1, -2), dim=-1)
        out = w @ v + a.res_conv(v)
        return x + a.to_out(out.transpose(1, 2).reshape(1, -1, x.shape[1]))[0]


class EPEG(nn.Module):
    """Depthwise convolution (width ``kernel``) along the columns of the square token grid."""

    def __init__(self, dim: int, kernel: int = 15) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(dim, 1, kernel).uniform_(-1, 1) / math.sqrt(kernel))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (1 + n, dim): the class token (left alone) and n tokens."""
        cls, tokens = x[:1], x[1:]
        n = tokens.shape[0]
        if n == 0:
            return x
        side = math.ceil(math.sqrt(n))
        grid = tokens.t().unsqueeze(0)  # (1, dim, n)
        pe = F.conv1d(
            grid,
            self.weight,
            self.bias,
            padding=(self.kernel // 2) * side,
            dilation=side,
            groups=tokens.shape[1],
        )
        return torch.cat([cls, tokens + pe[0].t()])


class SNNExpert(nn.Module):
    """Genomic expert: two SNN blocks ``dim -> hidden -> dim`` (per token)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(snn_block(dim, hidden, dropout), snn_block(hidden, dim, dropout))
        snn_init(self.net)

    def forward(self, h: Tensor, idx: Tensor) -> Tensor:
        return self.net(h[idx])


class ConvExpert(nn.Module):
    """Pathology expert: depthwise conv (width 3) over the sequence, then a pointwise MLP.

    Evaluated only at the rows ``idx``: each reads itself and its two sequence neighbours.
    """

    def __init__(self, dim: int, hidden: int, dropout: float, width: int = 3) -> None:
        super().__init__()
        self.width = width
        self.depthwise = nn.Parameter(torch.randn(width, dim) / math.sqrt(width))
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, h: Tensor, idx: Tensor) -> Tensor:
        half = self.width // 2
        padded = F.pad(h, (0, 0, half, half))
        windows = padded[idx[:, None] + torch.arange(self.width, device=h.device)]  # (m, w, d)
        return self.net((windows * self.depthwise).sum(dim=1))


class PREELayer(nn.Module):
    """One PREE layer: residual MLP branch + the top-1 expert of each token."""

    def __init__(
        self, dim: int, n_experts: int, make_expert: Callable[[], nn.Module], dropout: float
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim)
        )
        self.experts = nn.ModuleList(make_expert() for _ in range(n_experts))
        self.gate = (
            nn.Sequential(nn.Linear(dim, dim // 4), nn.ReLU(), nn.Linear(dim // 4, n_experts))
            if n_experts > 1
            else None
        )
        if self.gate is not None:
            nn.init.zeros_(self.gate[-1].bias)  # no expert preferred before training
        self.register_buffer("last_counts", torch.zeros(n_experts, dtype=torch.long), False)

    def route(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Chosen expert (n,) and its gate probability (n,) for normalised tokens ``h``."""
        if self.gate is None:
            return h.new_zeros(h.shape[0], dtype=torch.long), h.new_ones(h.shape[0])
        probs = torch.softmax(self.gate(h), dim=-1)
        choice = probs.argmax(dim=-1)
        return choice, probs.gather(1, choice[:, None]).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        choice, weight = self.route(h)
        self.last_counts = torch.bincount(choice, minlength=len(self.experts)).detach()
        routed = torch.zeros_like(h)
        for e, expert in enumerate(self.experts):
            idx = torch.nonzero(choice == e).squeeze(1)
            if idx.numel():
                routed = routed.index_copy(0, idx, weight[idx, None] * expert(h, idx))
        return x + self.mlp(h) + routed


class PREE(nn.Module):
    """Progressive residual experts expansion: layers with growing expert counts."""

    def __init__(
        self, dim: int, experts: Sequence[int], kind: str, dropout: float
    ) -> None:  # fmt: skip
        super().__init__()

        def make() -> nn.Module:
            if kind == "cnn":
                return ConvExpert(dim, dim, dropout)
            return SNNExpert(dim, dim, dropout)

        self.layers = nn.ModuleList(PREELayer(dim, int(k), make, dropout) for k in experts)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Unit(nn.Module):
    """Segregation / integration unit of one modality: 2 x (Transformer Block [, EPEG], PREE).

    In training, over more than ``checkpoint_tokens`` tokens, each part (Transformer Block,
    EPEG, each PREE layer) is recomputed in the backward pass instead of keeping its
    activations (same dropout masks: the RNG state is restored), so a part keeps one (n, dim)
    tensor.
    """

    def __init__(
        self,
        dim: int,
        experts: Sequence[int],
        pathology: bool,
        dropout: float,
        checkpoint_tokens: int | None = 1024,
    ) -> None:
        super().__init__()
        kind = "cnn" if pathology else "snn"
        self.checkpoint_tokens = checkpoint_tokens
        self.blocks = nn.ModuleList(TransformerBlock(dim) for _ in range(2))
        self.pos = nn.ModuleList(EPEG(dim) for _ in range(2)) if pathology else None
        self.pree = nn.ModuleList(PREE(dim, experts, kind, dropout) for _ in range(2))

    def parts(self) -> list[nn.Module]:
        """The unit's parts in order: per stage the block, EPEG (pathology), PREE layers."""
        out: list[nn.Module] = []
        for s in range(2):
            out.append(self.blocks[s])
            if self.pos is not None:
                out.append(self.pos[s])
            out.extend(self.pree[s].layers)
        return out

    def forward(self, x: Tensor) -> Tensor:
        limit = self.checkpoint_tokens
        recompute = limit is not None and x.shape[0] > limit and torch.is_grad_enabled()
        for part in self.parts():
            if recompute:
                x = torch.utils.checkpoint.checkpoint(part, x, use_reentrant=False)
            else:
                x = part(x)
        return x


class ATSA(nn.Module):
    """Adaptive token selection and aggregation (eqs. 10-14, see module docstring)."""

    def __init__(
        self,
        dim: int,
        k_max: int = 32,
        k: int | None = None,
        alpha: float | None = None,
        preserve: bool = True,
    ) -> None:
        super().__init__()
        if k is not None and k < 1:
            raise ValueError(f"atsa_k must be >= 1, got {k}")
        if alpha is not None and not 0 < alpha <= 1:
            raise ValueError(f"atsa_alpha must be in (0, 1], got {alpha}")
        red = max(dim // 2, 1)
        self.k_max, self.k, self.alpha, self.preserve = k_max, k, alpha, preserve
        self.local = nn.Sequential(nn.Linear(dim, red), nn.ReLU())
        self.glob = nn.Sequential(nn.Linear(dim, red), nn.ReLU())
        self.scorer = nn.Sequential(nn.Linear(2 * red, red), nn.ReLU(), nn.Linear(red, 1))
        self.k_router = (
            nn.Sequential(nn.Linear(dim, red), nn.ReLU(), nn.Linear(red, 1)) if k is None else None
        )
        self.alpha_router = (
            nn.Sequential(nn.Linear(dim, red), nn.ReLU(), nn.Linear(red, 1))
            if alpha is None
            else None
        )

    def scores(self, tokens: Tensor, cls: Tensor) -> Tensor:
        """Importance ``s`` (n,) of each token, a softmax over the tokens (eqs. 10-11)."""
        z = torch.cat([self.local(tokens), self.glob(cls).expand(tokens.shape[0], -1)], dim=1)
        return torch.softmax(self.scorer(z).squeeze(1), dim=0)

    def sizes(self, n: int, cls: Tensor) -> tuple[int, int, Tensor, Tensor]:
        """``K``, ``k_keep`` and their continuous versions (router outputs) for n tokens."""
        top = min(n, self.k_max)
        if self.k_router is None:
            k_soft = cls.new_tensor(float(min(self.k, n)))  # type: ignore[arg-type]
        else:
            k_soft = 1 + (top - 1) * torch.sigmoid(self.k_router(cls)).reshape(())
        k = int(min(max(round(float(k_soft.detach())), 1), n))
        if self.alpha_router is None:
            alpha = cls.new_tensor(float(self.alpha))  # type: ignore[arg-type]
        else:
            alpha = torch.sigmoid(self.alpha_router(cls)).reshape(())
        keep_soft = alpha * k_soft
        keep = int(min(max(round(float(keep_soft.detach())), 1), k))
        return k, keep, k_soft, keep_soft

    def forward(self, tokens: Tensor, cls: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Selected tokens (K', dim), the scores ``s`` (n,) and the ranked token order (n,)."""
        n = tokens.shape[0]
        s = self.scores(tokens, cls)
        k, keep, k_soft, keep_soft = self.sizes(n, cls)
        order = torch.argsort(s.detach(), descending=True, stable=True)
        rank = torch.arange(n, device=tokens.device, dtype=tokens.dtype)
        in_top = (rank < k).to(tokens.dtype)
        in_keep = (rank < keep).to(tokens.dtype)
        factor = (
            1.0
            + _st(s[order])
            + in_top * _st(torch.sigmoid(k_soft - rank - 0.5))
            + in_keep * _st(torch.sigmoid(keep_soft - rank - 0.5))
        )
        ranked = tokens[order] * factor[:, None]
        rest = ranked[keep:] if self.preserve else ranked[keep:k]
        n_pool = max(k - keep, 1) if rest.shape[0] else 0
        pooled = F.adaptive_avg_pool1d(rest.t().unsqueeze(0), n_pool)[0].t() if n_pool else rest
        return torch.cat([ranked[:keep], pooled]), s, order


class CrossAttention(nn.Module):
    """Co-attention of eqs. 18-21: returns (x_p* (m, d), x_g* (n, d))."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.wp1, self.wg1 = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.wp2, self.wg2 = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)

    def forward(self, xp: Tensor, xg: Tensor) -> tuple[Tensor, Tensor]:
        x = self.wp1(xp) @ self.wg1(xg).t() / math.sqrt(xp.shape[1])  # (n_p, n_g)
        p = torch.softmax(x, dim=0)  # column softmax: over pathology tokens
        g = torch.softmax(x, dim=1)  # row softmax: over genomic tokens
        return self.wp2(p.t() @ xp), self.wg2(g @ xg)


class LMF(nn.Module):
    """Low-rank multimodal fusion of two vectors (Liu et al. 2018; AdaMHF eq. 15)."""

    def __init__(self, dim: int, out_dim: int, rank: int = 4) -> None:
        super().__init__()
        self.fp = nn.Parameter(torch.empty(rank, dim + 1, out_dim))
        self.fg = nn.Parameter(torch.empty(rank, dim + 1, out_dim))
        nn.init.xavier_normal_(self.fp)
        nn.init.xavier_normal_(self.fg)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, xp: Tensor, xg: Tensor) -> Tensor:
        one = xp.new_ones(1)
        hp = torch.einsum("d,rdo->ro", torch.cat([xp, one]), self.fp)
        hg = torch.einsum("d,rdo->ro", torch.cat([xg, one]), self.fg)
        return (hp * hg).sum(dim=0) + self.bias


class AdaMHF(MultimodalModel):
    """Adaptive Multimodal Hierarchical Fusion (see module docstring for every choice)."""

    def __init__(
        self,
        path_dim: int = 1024,
        omics_sizes: list[int] | None = None,
        n_bins: int = 4,
        dropout: float = 0.25,
        dim: int = 256,
        pree_experts: Sequence[int] = (1, 2, 4),
        atsa_k_max: int = 32,
        atsa_k: int | None = None,
        atsa_alpha: float | None = None,
        atsa_preserve: bool = True,
        lmf_rank: int = 4,
        beta: float = 0.2,
        align_weight: float = 0.1,
        modality_dropout: float = 0.0,
        checkpoint_tokens: int | None = 1024,
    ) -> None:
        super().__init__("adamhf", path_dim, omics_sizes, dim)
        if not pree_experts or any(int(k) < 1 for k in pree_experts):
            raise ValueError(f"pree_experts must be positive counts, got {pree_experts}")
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if not 0 <= modality_dropout < 1:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        experts = [int(k) for k in pree_experts]
        self.beta, self.align_weight, self.modality_dropout = beta, align_weight, modality_dropout
        self.path_fc = patch_fc(path_dim, dim, dropout)
        self.omic_nets = nn.ModuleList(snn_encoder(n, dim, dropout) for n in self.omics_sizes)
        self.cls = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(1, dim) * 0.02) for m in (PATHOLOGY, GENOMICS)}
        )
        self.segregation = nn.ModuleDict(
            {
                PATHOLOGY: Unit(dim, experts, True, dropout, checkpoint_tokens),
                GENOMICS: Unit(dim, experts, False, dropout, checkpoint_tokens),
            }
        )
        self.atsa = nn.ModuleDict(
            {
                m: ATSA(dim, atsa_k_max, atsa_k, atsa_alpha, atsa_preserve)
                for m in (PATHOLOGY, GENOMICS)
            }
        )
        self.cross = CrossAttention(dim)
        self.integration = nn.ModuleDict(
            {
                PATHOLOGY: Unit(dim, experts, True, dropout, checkpoint_tokens),
                GENOMICS: Unit(dim, experts, False, dropout, checkpoint_tokens),
            }
        )
        self.lmf = LMF(dim, dim, lmf_rank)
        self.merge = nn.Sequential(
            nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )
        self.classifier = nn.Linear(dim, n_bins)

    def _absent(self, x_path: Tensor | None, x_omics: list[Tensor] | None, ref: Tensor):
        """The "no information" input of each absent modality (see module docstring)."""
        if x_path is None:
            x_path = ref.new_zeros(1, self.path_dim)
        if x_omics is None:
            x_omics = [ref.new_zeros(n) for n in self.omics_sizes]
        return x_path, x_omics

    def forward(
        self,
        x_path: Tensor | None,
        x_omics: list[Tensor] | None,
        coords: Tensor | None = None,
        extra: dict[str, Tensor] | None = None,
    ) -> ModelOutput:
        check_inputs("adamhf", set(), x_path, x_omics, self.path_dim, len(self.omics_sizes))
        present = {PATHOLOGY: x_path is not None, GENOMICS: x_omics is not None}
        if self.training and self.modality_dropout > 0 and all(present.values()):
            if float(torch.rand(())) < self.modality_dropout:
                present[(PATHOLOGY, GENOMICS)[int(torch.randint(2, ()))]] = False
        ref = self.classifier.weight
        x_path, x_omics = self._absent(
            x_path if present[PATHOLOGY] else None, x_omics if present[GENOMICS] else None, ref
        )
        tokens = {
            PATHOLOGY: self.path_fc(x_path),
            GENOMICS: torch.stack(
                [net(g.reshape(-1)) for net, g in zip(self.omic_nets, x_omics, strict=True)]
            ),
        }
        cls: dict[str, Tensor] = {}
        selected: dict[str, Tensor] = {}
        scores = None
        for m, x in tokens.items():
            h = self.segregation[m](torch.cat([self.cls[m], x]))
            cls[m] = h[:1]
            selected[m], s, _ = self.atsa[m](h[1:], h[0])
            if m == PATHOLOGY:
                scores = s
        xp_star, xg_star = self.cross(selected[PATHOLOGY], selected[GENOMICS])
        out: dict[str, Tensor] = {}
        for m, x in ((PATHOLOGY, xp_star), (GENOMICS, xg_star)):
            out[m] = self.integration[m](torch.cat([cls[m], x]))
        cls_p, cls_g = out[PATHOLOGY][0], out[GENOMICS][0]
        local = self.lmf(out[PATHOLOGY][1:].mean(dim=0), out[GENOMICS][1:].mean(dim=0))
        glob = self.merge(torch.cat([cls_g, cls_p]))
        fused = (1 - self.beta) * glob + self.beta * local
        logits = self.classifier(fused.unsqueeze(0))
        aux = ref.new_zeros(())
        if all(present.values()):
            aux = self.align_weight * (cls_p - cls_g).abs().mean()
        emb = {m: out[m][:1].detach() for m in (PATHOLOGY, GENOMICS) if present[m]}
        emb["fusion"] = fused.detach().unsqueeze(0)
        attention = scores.detach() if present[PATHOLOGY] and scores is not None else None
        return ModelOutput(logits, aux, attention, emb)

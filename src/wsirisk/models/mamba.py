"""Mamba mixers with several scan orders (Mamba, BiMamba, three-order MIL layers).

:class:`MultiOrderMamba` is a pre-norm Mamba (S6) mixer (Gu & Dao 2023; LayerNorm, d_state 16,
d_conv 4, expand 2, ``dt_rank = ceil(d_model / 16)``, Mamba's dt/A initialisation) that reads the
same tokens in ``K`` orders: the LayerNorm and the input and output projections are shared, each order has its own causal
depthwise conv, ``x_proj``, ``dt_proj``, ``A`` and ``D`` (as Vim's BiMamba-v2 and MambaMIL's
SRMamba), and the ``K`` gated outputs are put back in token order and summed before the output
projection. ``K = 1`` with the identity order is plain Mamba; ``K = 2`` with the identity and the
reversed order is BiMamba.

The ``K`` orders run as one grouped selective scan. On CPU the layer is *streamed*: tokens are
processed in chunks along each scan order, carrying the SSM state and the conv context, and the
backward pass recomputes one chunk at a time (activation checkpointing per chunk, LayerNorm
included), so a layer stores only its input and output: O(L d_model) instead of O(L K d_inner). On CUDA with mamba-ssm the whole sequence goes
through the fused kernel instead (without mamba-ssm, the whole sequence goes through the
chunked PyTorch scan, which then checkpoints per block of chunks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .scan import selective_scan

DEFAULT_STREAM_CHUNK = 128


def mixer_core(
    x: Tensor,
    scale: Tensor | None,
    tail: Tensor,
    h0: Tensor | None,
    params: Sequence[Tensor],
    d_state: int,
    checkpoint_scan: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``K`` mixer branches on already-ordered tokens (functional form).

    ``x`` (K, T, d_model) raw tokens in each branch's scan order, ``scale`` (K, T) or None a
    per-token factor applied after the LayerNorm; ``tail`` (K, d_inner, d_conv - 1) the conv
    inputs preceding this chunk; ``h0`` (1, K d_inner, N) the incoming SSM state or None.
    Returns the projected outputs (K, T, d_model), the new conv tail and the last SSM state.
    ``checkpoint_scan=False`` keeps the scan's chunk activations (used when the caller already
    recomputes a short segment).
    """
    ln_w, ln_b, w_in, conv_w, conv_b, w_x, w_dt, dt_bias, a_log, d_skip, w_out = params
    k, t, d_model = x.shape
    di = w_out.shape[1]
    rank = w_dt.shape[1]
    x = F.layer_norm(x, (d_model,), ln_w, ln_b)
    if scale is not None:
        x = x * scale.unsqueeze(-1)
    xz = x @ w_in.t()  # (K, T, 2 di)
    xc, z = xz.split(di, dim=-1)
    xc = torch.cat([tail, xc.transpose(1, 2)], dim=-1)  # (K, di, dc - 1 + T)
    new_tail = xc[..., xc.shape[-1] - tail.shape[-1] :].clone()  # a view would pin all of xc
    u = F.silu(F.conv1d(xc.reshape(1, k * di, -1), conv_w, conv_b, groups=k * di))
    x_dbl = torch.bmm(u.view(k, di, t).transpose(1, 2), w_x)  # (K, T, R + 2N)
    dt_low, b_sel, c_sel = x_dbl.split([rank, d_state, d_state], dim=-1)
    delta = torch.bmm(dt_low, w_dt).transpose(1, 2).reshape(1, k * di, t)
    y, last = selective_scan(
        u,
        delta,
        -torch.exp(a_log.float()),
        b_sel.transpose(1, 2).unsqueeze(0).contiguous(),
        c_sel.transpose(1, 2).unsqueeze(0).contiguous(),
        D=d_skip.float(),
        z=z.transpose(1, 2).reshape(1, k * di, t),
        delta_bias=dt_bias.float(),
        delta_softplus=True,
        return_last_state=True,
        initial_state=h0,
        checkpoint=checkpoint_scan,
    )
    out = y.view(k, di, t).transpose(1, 2) @ w_out.t()
    return out, new_tail, last


class _StreamedMixer(torch.autograd.Function):
    """Chunk-streamed :func:`mixer_core` with per-chunk recomputation in backward."""

    @staticmethod
    def forward(ctx, x, scale, orders, chunk, d_state, *params):  # type: ignore[override]
        k, length = orders.shape
        di, dc, n = params[10].shape[1], params[3].shape[-1], params[8].shape[1]
        out = torch.zeros_like(x)
        tail = x.new_zeros(k, di, dc - 1)
        h0 = x.new_zeros(1, k * di, n)
        tails, states = [], []
        for s in range(0, length, chunk):
            idx = orders[:, s : s + chunk]
            tails.append(tail)
            states.append(h0)
            sc = None if scale is None else scale[idx]
            y, tail, h0 = mixer_core(x[idx], sc, tail, h0, params, d_state)
            out.index_add_(0, idx.reshape(-1), y.reshape(-1, y.shape[-1]))
        scale_t = x.new_empty(0) if scale is None else scale
        ctx.save_for_backward(x, scale_t, orders, *params, *tails, *states)
        ctx.has_scale = scale is not None
        ctx.chunk, ctx.d_state, ctx.n_params = chunk, d_state, len(params)
        return out

    @staticmethod
    def backward(ctx, gout):  # type: ignore[override]
        x, scale, orders, *rest = ctx.saved_tensors
        params = rest[: ctx.n_params]
        n_chunks = (len(rest) - ctx.n_params) // 2
        tails = rest[ctx.n_params : ctx.n_params + n_chunks]
        states = rest[ctx.n_params + n_chunks :]
        gx = torch.zeros_like(x)
        gscale = torch.zeros_like(scale) if ctx.has_scale else None
        gparams = [torch.zeros_like(p) for p in params]
        g_tail = torch.zeros_like(tails[0])
        g_h = torch.zeros_like(states[0])
        for i in reversed(range(n_chunks)):
            idx = orders[:, i * ctx.chunk : (i + 1) * ctx.chunk]
            with torch.enable_grad():
                xc = x[idx].detach().requires_grad_()
                sc = scale[idx].detach().requires_grad_() if ctx.has_scale else None
                tail = tails[i].detach().requires_grad_()
                h0 = states[i].detach().requires_grad_()
                ps = [p.detach().requires_grad_() for p in params]
                y, new_tail, last = mixer_core(xc, sc, tail, h0, ps, ctx.d_state, False)
                inputs = (xc, tail, h0, *ps) + ((sc,) if sc is not None else ())
                grads = torch.autograd.grad((y, new_tail, last), inputs, (gout[idx], g_tail, g_h))
            gx.index_add_(0, idx.reshape(-1), grads[0].reshape(-1, x.shape[-1]))
            g_tail, g_h = grads[1], grads[2]
            for acc, g in zip(gparams, grads[3 : 3 + len(params)], strict=True):
                acc += g
            if gscale is not None:
                gscale.index_add_(0, idx.reshape(-1), grads[-1].reshape(-1))
        return gx, gscale, None, None, None, *gparams


class MultiOrderMamba(nn.Module):
    """Pre-norm Mamba mixer over ``n_orders`` token orders (see module docstring).

    ``forward(x, orders, scale)``: ``x`` (L, d_model) tokens, ``orders`` (K, L) LongTensor of
    permutations (row k lists the token indices in branch k's scan order) or None for the
    identity in every branch, ``scale`` (L,) or None a factor applied to the normalised tokens.
    Returns (L, d_model) = out_proj(sum_k restore_k(y_k)) with y_k branch k's gated SSM output
    on ``LayerNorm(x) * scale`` read in order k. The LayerNorm is part of the mixer so that the
    streamed version recomputes it per chunk instead of storing the normalised sequence.
    """

    def __init__(
        self,
        d_model: int,
        n_orders: int = 1,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        stream_chunk: int = DEFAULT_STREAM_CHUNK,
    ) -> None:
        super().__init__()
        k, di = n_orders, expand * d_model
        rank = math.ceil(d_model / 16)
        self.n_orders, self.d_state, self.d_inner, self.stream_chunk = k, d_state, di, stream_chunk
        self.norm = nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        bound = 1.0 / math.sqrt(d_conv)
        self.conv_weight = nn.Parameter(torch.empty(k * di, 1, d_conv).uniform_(-bound, bound))
        self.conv_bias = nn.Parameter(torch.empty(k * di).uniform_(-bound, bound))
        bx = 1.0 / math.sqrt(di)
        self.x_proj_weight = nn.Parameter(torch.empty(k, di, rank + 2 * d_state).uniform_(-bx, bx))
        bdt = rank**-0.5
        self.dt_proj_weight = nn.Parameter(torch.empty(k, rank, di).uniform_(-bdt, bdt))
        dt = torch.exp(
            torch.rand(k * di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        ).clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * di, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(k * di))
        self.out_proj = nn.Linear(di, d_model, bias=False)

    def params(self) -> list[Tensor]:
        """Parameters in :func:`mixer_core` order."""
        return [
            self.norm.weight,
            self.norm.bias,
            self.in_proj.weight,
            self.conv_weight,
            self.conv_bias,
            self.x_proj_weight,
            self.dt_proj_weight,
            self.dt_bias,
            self.A_log,
            self.D,
            self.out_proj.weight,
        ]

    def forward(
        self,
        x: Tensor,
        orders: Tensor | None = None,
        scale: Tensor | None = None,
        stream: bool | None = None,
    ) -> Tensor:
        length = x.shape[0]
        if orders is None:
            orders = torch.arange(length, device=x.device).expand(self.n_orders, length)
        if orders.shape != (self.n_orders, length):
            raise ValueError(f"orders must be ({self.n_orders}, {length}), got {orders.shape}")
        if stream is None:
            stream = not x.is_cuda  # GPUs have the memory; streaming costs kernel launches
        if stream:
            return _StreamedMixer.apply(
                x.contiguous(),
                scale,
                orders.contiguous(),
                self.stream_chunk,
                self.d_state,
                *self.params(),
            )
        tail = x.new_zeros(self.n_orders, self.d_inner, self.conv_weight.shape[-1] - 1)
        sc = None if scale is None else scale[orders]
        y, _, _ = mixer_core(x[orders], sc, tail, None, self.params(), self.d_state)
        out = torch.zeros_like(x)
        return out.index_add(0, orders.reshape(-1), y.reshape(-1, x.shape[-1]))


class MambaLayer(nn.Module):
    """Residual layer ``x + Mixer(x, orders)`` (the mixer starts with its LayerNorm)."""

    def __init__(self, d_model: int, n_orders: int = 1, **mixer_kwargs: float) -> None:
        super().__init__()
        self.mixer = MultiOrderMamba(d_model, n_orders, **mixer_kwargs)  # type: ignore[arg-type]

    def forward(self, x: Tensor, orders: Tensor | None = None) -> Tensor:
        return x + self.mixer(x, orders)


def reverse_orders(length: int, device: torch.device | None = None) -> Tensor:
    """Orders (2, L) for BiMamba: forward and backward."""
    fwd = torch.arange(length, device=device)
    return torch.stack([fwd, fwd.flip(0)])


class BiMambaLayer(MambaLayer):
    """Bidirectional Mamba layer (Vim): one forward and one backward scan, summed."""

    def __init__(self, d_model: int, **mixer_kwargs: float) -> None:
        super().__init__(d_model, 2, **mixer_kwargs)

    def forward(self, x: Tensor, orders: Tensor | None = None) -> Tensor:
        return super().forward(
            x, reverse_orders(x.shape[0], x.device) if orders is None else orders
        )

"""Selective scan (Mamba S6) with a CUDA-kernel backend and a chunked pure-PyTorch backend.

Recurrence, per channel ``d`` and state ``n`` (diagonal ``A <= 0``)::

    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,      y_t = C_t . h_t (+ D x_t) (* silu(z_t))

:func:`selective_scan` has the signature and tensor layout of ``mamba_ssm``'s
``selective_scan_fn``: ``u, delta, z`` are (batch, D, L), ``A`` is (D, N), ``B, C`` are
(batch, N, L) or grouped (batch, G, N, L) with ``D`` split into ``G`` equal channel groups.
It uses mamba-ssm's kernel when that package imports and the tensors are on CUDA, otherwise
:func:`chunked_scan`.

The pure-PyTorch scan splits time into chunks and, inside a chunk, uses the closed form
``h_t = e^{c_t} (sum_{s<=t} e^{-c_s} b_s) + e^{cum_t} h_0`` with ``cum`` the cumulative
log-decay and ``c = cum - ref`` centred on the chunk. Chunk lengths are chosen from the
largest per-step decay ``max_d dt_t |A_d|`` so that ``|c| <= log_decay_bound / 2`` (the first
step of a chunk is free, so any ``dt`` is safe): nothing overflows however large ``dt`` gets.
Time is cut into cache-sized blocks of uniform chunks (the chunk length is adapted per block,
see :func:`plan_blocks`), so a block is a contiguous slice of the sequence; the states entering the
chunks of a block follow from a short sequential pass over chunk-end states, and the backward
pass carries the adjoint state the same way in reverse. The autograd function keeps only the
inputs and the state entering each block, and recomputes each block in the backward pass
(activation checkpointing per block of chunks), so training memory is ``O(L (D + N))``
instead of ``O(L D N)``. Channels are split into slabs run on parallel threads, each
single-threaded.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_LOG_DECAY_BOUND = 100.0
LOG2E = 1.0 / math.log(2.0)
DEFAULT_MAX_CHUNK = 64
BLOCK_ELEMS = 1 << 19  # elements of one (b, D, N, chunks, T) block tensor (cache-sized)
BLOCK_ELEMS_CUDA = 1 << 25  # on a GPU, few large launches matter more than cache
SCAN_THREADS: int | None = None  # channel slabs in parallel; None = torch.get_num_threads()


@functools.cache
def _mamba_ssm_scan():  # pragma: no cover - needs CUDA + mamba-ssm
    """mamba-ssm's ``selective_scan_fn`` or None when the package cannot be imported."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:
        return None
    return selective_scan_fn


def cuda_kernel_available() -> bool:
    """True when mamba-ssm's CUDA selective-scan kernel can be used."""
    return torch.cuda.is_available() and _mamba_ssm_scan() is not None


@functools.cache
def _chunk_lengths(max_chunk: int) -> list[int]:
    """Candidate chunk lengths, largest first (roughly geometric, always ending at 1)."""
    out, t = [], float(max_chunk)
    while t >= 1:
        if not out or int(t) < out[-1]:
            out.append(int(t))
        t *= 0.8
    return out if out[-1] == 1 else [*out, 1]


def plan_blocks(
    dt: Tensor, A: Tensor, log_decay_bound: float, max_chunk: int, step_elems: int = 1,
    block_elems: int | None = None,
) -> list[tuple[int, int, int]]:  # fmt: skip
    """Cover ``range(L)`` with blocks ``(start, n_chunks, T)`` of ``n_chunks`` chunks of ``T``
    steps.

    ``dt`` is (batch, D, L) and ``A`` (D, N). A chunk ``[s, s + T)`` is allowed when its
    log-decay range ``sum_{r=s+1}^{s+T-1} max_d dt_r |A_d|`` is below the bound (the first
    step's decay is free, so any ``dt`` is safe). Chunks are uniform inside a block, so a block
    is a contiguous slice of the sequence (no index gather, no padding); per block the largest ``T`` that
    covers the most steps is used, so a huge ``dt`` only shortens the chunks of its own block.
    ``block_elems`` caps ``step_elems * n_chunks * T`` (cache-sized blocks).
    """
    L = dt.shape[-1]
    budget = block_elems or BLOCK_ELEMS
    a_max = A.detach().abs().amax(dim=-1).float()  # (D,)
    m = (dt.detach().float() * a_max[:, None]).amax(dim=(0, 1)).cpu().numpy()
    cum = np.cumsum(m, dtype=np.float64)
    # longest allowed chunk from each start: cum[s + T - 1] - cum[s] < bound
    t_max = np.searchsorted(cum, cum + log_decay_bound, side="left") - np.arange(L)
    t_max = np.minimum(t_max, max_chunk).tolist()
    blocks: list[tuple[int, int, int]] = []
    p = 0
    while p < L:
        best = (0, 0, 1)  # (covered steps, n_chunks, T)
        for T in _chunk_lengths(max_chunk):
            if T > t_max[p]:  # the first chunk would not fit
                continue
            k_max = min(max(1, budget // (step_elems * T)), (L - p) // T)
            if k_max == 0:
                continue
            k = next((i for i in range(k_max) if t_max[p + i * T] < T), k_max)
            if k * T > best[0]:
                best = (k * T, k, T)
            if k == k_max:  # every chunk fits: no smaller T covers more
                break
        _, k, T = best
        blocks.append((p, k, T))
        p += k * T
    return blocks


class _Layout:
    """Blocks of uniform chunks (see :func:`plan_blocks`): contiguous time slices."""

    def __init__(self, blocks: list[tuple[int, int, int]]) -> None:
        self.blocks = blocks

    def gather(self, x: Tensor, i: int, shape: tuple[int, ...]) -> Tensor:
        """``x[..., L]`` -> block ``i`` as ``(*shape, n_chunks, T)``: a contiguous copy of a
        slice (cheap, O(L D); the O(L D N) block ops run faster on it than on a strided view)."""
        p, k, T = self.blocks[i]
        return x[..., p : p + k * T].reshape(*shape, k, T).contiguous()

    def scatter(self, out: Tensor, block: Tensor, i: int) -> None:
        """Write block ``i`` ``(..., n_chunks, T)`` into ``out[..., L]``."""
        p, k, T = self.blocks[i]
        out[..., p : p + k * T] = block.flatten(-2)


def _block_states(
    u: Tensor, dt: Tensor, A2: Tensor, Bm: Tensor, h0: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Scaled states of a block of chunks (layout (b, G, Dg, N, chunks, T); u, dt: N = 1).

    ``A2`` is ``A log2(e)`` as (G, Dg, N, 1, 1). Inside chunk c,
    ``h_t = e^{c_t} (k_c + sum_{s<=t} w_s)`` with ``w_s = e^{-c_s} b_s``,
    ``c_t = A (sum_{r<=t} dt_r - ref)`` centred on the chunk and ``k_c = e^{ref} H_c`` the
    scaled incoming state; ``H_c`` follows from the chunk-end states by a short sequential
    pass over chunks. Returns ``cs`` (``h = e * cs``), ``w`` (with ``k`` added at the first
    step), ``e = exp(c)``, ``exp(ref A)``, the chunk decays ``exp(A sum dt)``, ``k`` (all but
    the first three are (b, G, Dg, N, chunks)) and the state after the block.
    """
    sdt = dt.cumsum(-1)  # A factors out of the time cumsum of the log-decay
    ref = 0.5 * (sdt[..., :1] + sdt[..., -1:])
    # exp(x A) as exp2(x A log2 e): torch's exp2 is several times faster than exp on CPU
    e_ref = (ref * A2).exp2_()  # may underflow to 0: it only scales the negligible carry-in
    e = ((sdt - ref) * A2).exp2_()  # within [e^{-bound/2}, e^{bound/2}]
    w = ((dt * u) * Bm).div_(e)
    e_last = e[..., -1]
    decay = e_last * e_ref[..., 0]
    h_end = e_last * w.sum(-1)  # chunk-end states from a zero start
    carry_in = torch.empty_like(h_end)
    h = h0
    for c in range(h_end.shape[-1]):  # tiny (b, G, Dg, N) ops
        carry_in[..., c] = h
        h = decay[..., c] * h + h_end[..., c]
    k = e_ref[..., 0] * carry_in
    w[..., 0] += k  # the carry-in is a constant inside the cumsum
    return w.cumsum(-1), w, e, e_ref, decay, k, h


def _forward_slab(
    u: Tensor, dt: Tensor, A: Tensor, Bm: Tensor, Cm: Tensor, y: Tensor, h0: Tensor, lay, keep
) -> tuple[Tensor, list[Tensor], list[tuple[Tensor, ...]]]:
    """Forward over all blocks for one channel slab: ``u, dt, y`` (b, G, Ds, L), ``A``
    (G, Ds, N), ``h0`` (b, G, Ds, N). Writes ``y``; returns the last state, the state entering
    each block and (if ``keep``) the block activations."""
    b, g, ds, _ = u.shape
    n = Bm.shape[2]
    A2 = A.reshape(g, ds, n, 1, 1) * LOG2E
    starts, acts = [], []
    for i in range(len(lay.blocks)):
        starts.append(h0)
        uc = lay.gather(u, i, (b, g, ds, 1))
        dtc = lay.gather(dt, i, (b, g, ds, 1))
        Bc = lay.gather(Bm, i, (b, g, 1, n))
        Cc = lay.gather(Cm, i, (b, g, 1, n))
        states = _block_states(uc, dtc, A2, Bc, h0)
        h0 = states[-1]
        cs, ex = states[0], states[2]
        h = cs * ex if keep else cs.mul_(ex)
        lay.scatter(y, h.mul_(Cc).sum(3), i)
        if keep:
            acts.append(states)
    return h0, starts, acts


def _backward_slab(
    u, dt, A, Bm, Cm, gy, carry, starts, acts, lay, grads
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Backward over the blocks of one channel slab (same layouts as :func:`_forward_slab`).

    Writes ``gu, gdt`` (slab views in ``grads``); returns ``gA`` (G, Ds, N), partial ``gB``,
    ``gC`` (b, G, N, L) and the gradient for the slab's initial state."""
    gu, gdt = grads
    b, g, ds, L = u.shape
    n = Bm.shape[2]
    A2 = A.reshape(g, ds, n, 1, 1) * LOG2E
    A_row = A.reshape(1, g, ds, 1, n)
    gB, gC = torch.empty_like(Bm), torch.empty_like(Cm)
    gA = u.new_zeros(g, ds, n)
    for i in reversed(range(len(lay.blocks))):
        k_chunks = lay.blocks[i][1]
        uc = lay.gather(u, i, (b, g, ds, 1))
        dtc = lay.gather(dt, i, (b, g, ds, 1))
        Bc = lay.gather(Bm, i, (b, g, 1, n))
        Cc = lay.gather(Cm, i, (b, g, 1, n))
        gyc = lay.gather(gy, i, (b, g, ds, 1))
        if acts:
            cs, w, ex, e_ref, decay, k, _ = acts.pop()
        else:
            cs, w, ex, e_ref, decay, k, _ = _block_states(uc, dtc, A2, Bc, starts[i])
        q = gyc * ex  # h = e * cs, so gy . h = (gy e) . cs
        lay.scatter(gC, (q * cs).sum(2), i)
        # adjoint inside chunk c: gh_t = e^{-c_t} R_t with
        # R_t = sum_{s>=t} e^{c_s} C_s gy_s + e^{c_T} G_c
        r = q.mul_(Cc)
        r_sum = r.sum(-1)
        carry_out = torch.empty_like(r_sum)
        for c in reversed(range(k_chunks)):  # G_{c-1} = e^{ref} r_sum_c + decay_c G_c
            carry_out[..., c] = carry
            carry = e_ref[..., c, 0] * r_sum[..., c] + decay[..., c] * carry
        r[..., -1] += ex[..., -1] * carry_out
        big_r = r.flip(-1).cumsum_(-1).flip(-1)
        # gh_t exp(a_t) h_{t-1} = R_t (cs_t - w_t) (+ k at the first step)
        ga = cs.sub_(w)
        ga[..., 0] = k
        ga.mul_(big_r)
        gA += (ga * dtc).sum(dim=(0, 4, 5))
        ga_a = torch.matmul(A_row, ga.flatten(-2)).view(b, g, ds, k_chunks, -1)  # sum_n ga A
        gh = big_r.div_(ex)
        ghB = (gh * Bc).sum(3)
        lay.scatter(gu, dtc[:, :, :, 0] * ghB, i)
        lay.scatter(gdt, ga_a.addcmul_(uc[:, :, :, 0], ghB), i)
        lay.scatter(gB, gh.mul_(dtc * uc).sum(2), i)
    return gA, gB, gC, carry


_POOL: ThreadPoolExecutor | None = None


def _run_slabs(fn, dg: int, device: torch.device) -> list:
    """Run ``fn(slice)`` over channel slabs: one per intra-op thread, each single-threaded.

    The per-chunk tensors are small, so OpenMP fork/join per op costs more than it gains (and
    stalls whenever another process takes a core); splitting channels across Python threads
    that each run single-threaded ops keeps both cores busy without barriers.
    """
    global _POOL
    if device.type != "cpu":
        return [fn(slice(0, dg))]
    threads = min(torch.get_num_threads(), SCAN_THREADS or torch.get_num_threads(), dg)
    if threads <= 1:
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [fn(slice(0, dg))]
        finally:
            torch.set_num_threads(prev)
    slabs = _slices(dg, threads)
    if _POOL is None or _POOL._max_workers < threads:
        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsirisk-scan")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)  # new pool threads start single-threaded; MKL too
    # grad and inference modes are thread-local: the workers take the caller's inference mode,
    # else tensors made under the caller's torch.inference_mode() cannot be written in place
    inference = torch.is_inference_mode_enabled()

    inference = torch.is_inference_mode_enabled()  # pool threads do not inherit it

    def run(sl: slice):
        with torch.inference_mode(inference), torch.no_grad():
            return fn(sl)

    try:
        return list(_POOL.map(run, slabs))
    finally:
        torch.set_num_threads(prev)


class _ChunkedScan(torch.autograd.Function):
    """y = scan(u, dt, A, B, C) (time-last layout), processed in blocks of padded chunks.

    With ``checkpoint`` only the state entering each block is kept and blocks are recomputed
    in the backward pass; without it the block activations are kept (for callers that already
    checkpoint a short segment, e.g. the streamed Mamba layer). Channels are split into slabs
    processed in parallel (see :func:`_run_slabs`).
    """

    @staticmethod
    def forward(ctx, u, dt, A, Bm, Cm, h_init, blocks, need_last, checkpoint):  # type: ignore[override]
        b, dd, L = u.shape
        g, n = Bm.shape[1], Bm.shape[2]
        dg = dd // g
        lay = _Layout(blocks)
        y = u.new_empty(b, dd, L)
        h0 = u.new_zeros(b, g, dg, n) if h_init is None else h_init.reshape(b, g, dg, n)
        u4, dt4, y4 = (t.view(b, g, dg, -1) for t in (u, dt, y))
        A3 = A.view(g, dg, n)

        def slab(sl: slice):
            return _forward_slab(
                u4[:, :, sl], dt4[:, :, sl], A3[:, sl], Bm, Cm, y4[:, :, sl], h0[:, :, sl],
                lay, not checkpoint,
            )  # fmt: skip

        outs = _run_slabs(slab, dg, u.device)
        ctx.slabs = [sl for sl in _slices(dg, len(outs))]
        ctx.starts = [o[1] for o in outs]
        ctx.acts = [o[2] for o in outs]
        ctx.save_for_backward(u, dt, A, Bm, Cm)
        ctx.lay, ctx.has_init = lay, h_init is not None
        last = torch.cat([o[0] for o in outs], dim=2).reshape(b, dd, n)
        if not need_last:
            ctx.mark_non_differentiable(last)
        return y, last

    @staticmethod
    def backward(ctx, gy, g_last):  # type: ignore[override]
        u, dt, A, Bm, Cm = ctx.saved_tensors
        b, dd, L = u.shape
        g, n = Bm.shape[1], Bm.shape[2]
        dg = dd // g
        gu, gdt = torch.empty_like(u), torch.empty_like(dt)
        carry = u.new_zeros(b, g, dg, n) if g_last is None else g_last.reshape(b, g, dg, n)
        views = [t.view(b, g, dg, -1) for t in (u, dt, gy.contiguous(), gu, gdt)]
        A3 = A.view(g, dg, n)
        index = {sl.start: i for i, sl in enumerate(ctx.slabs)}

        def slab(sl: slice):
            i = index[sl.start]
            u4, dt4, gy4, gu4, gdt4 = (v[:, :, sl] for v in views)
            return _backward_slab(
                u4, dt4, A3[:, sl], Bm, Cm, gy4, carry[:, :, sl], ctx.starts[i], ctx.acts[i],
                ctx.lay, (gu4, gdt4),
            )  # fmt: skip

        outs = _run_slabs(slab, dg, u.device)
        gA = torch.cat([o[0] for o in outs], dim=1).reshape(dd, n)
        gB = functools.reduce(torch.add, [o[1] for o in outs])
        gC = functools.reduce(torch.add, [o[2] for o in outs])
        g_init = torch.cat([o[3] for o in outs], dim=2).reshape(b, dd, n) if ctx.has_init else None
        return gu, gdt, gA, gB, gC, g_init, None, None, None


def _slices(dg: int, parts: int) -> list[slice]:
    cuts = [round(i * dg / parts) for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def chunked_scan(
    u: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    *,
    log_decay_bound: float = DEFAULT_LOG_DECAY_BOUND,
    max_chunk: int = DEFAULT_MAX_CHUNK,
    initial_state: Tensor | None = None,
    return_last_state: bool = False,
    checkpoint: bool = True,
) -> Tensor | tuple[Tensor, Tensor]:
    """Pure-PyTorch selective scan without D skip or gate (``dt`` already positive).

    Shapes (time last, as mamba-ssm): ``u, dt`` (batch, D, L); ``A`` (D, N); ``B, C``
    (batch, N, L) or (batch, G, N, L) with ``G | D``; ``initial_state`` (batch, D, N) or None.
    Returns ``y`` (batch, D, L) in float32 (and the last state (batch, D, N) on request).
    ``checkpoint=False`` keeps the chunk activations instead of recomputing them (faster
    backward, ``O(L D N)`` memory: only for short segments).
    """
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    if u.shape[1] % B.shape[1]:
        raise ValueError(f"D={u.shape[1]} is not divisible by {B.shape[1]} groups")
    f32 = [t.float().contiguous() for t in (u, dt, A, B, C)]
    if u.shape[-1] == 0:
        y0 = f32[0].new_zeros(u.shape)
        last0 = f32[0].new_zeros(u.shape[0], u.shape[1], A.shape[1])
        return (y0, last0 if initial_state is None else initial_state) if return_last_state else y0
    budget = BLOCK_ELEMS_CUDA if u.is_cuda else BLOCK_ELEMS
    step_elems = u.shape[0] * u.shape[1] * A.shape[1]
    blocks = plan_blocks(f32[1], f32[2], log_decay_bound, max_chunk, step_elems, budget)
    h_init = None if initial_state is None else initial_state.float()
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (*f32, h_init)
    )
    checkpoint = checkpoint or not needs_grad
    y, last = _ChunkedScan.apply(*f32, h_init, blocks, return_last_state, checkpoint)
    return (y, last) if return_last_state else y


def _finish(y: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None, dtype: torch.dtype) -> Tensor:
    if D is not None:
        y = y + u.float() * D.float().view(-1, 1)
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def _prepare_dt(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    dt = delta.float()
    if delta_bias is not None:
        dt = dt + delta_bias.float().view(-1, 1)
    return F.softplus(dt) if delta_softplus else dt


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    backend: str = "auto",
    initial_state: Tensor | None = None,
    **chunk_kwargs: object,
) -> Tensor | tuple[Tensor, Tensor]:
    """``mamba_ssm.selective_scan_fn`` semantics; ``backend`` is "auto", "cuda" or "torch".

    ``u, delta, z``: (batch, D, L); ``A``: (D, N); ``B, C``: (batch, N, L) or (batch, G, N, L).
    Returns ``y`` (batch, D, L) in ``u``'s dtype (and the last state (batch, D, N)).
    ``initial_state`` (batch, D, N) is supported by the PyTorch backend only.
    """
    use_cuda = backend == "cuda" or (
        backend == "auto" and u.is_cuda and initial_state is None and cuda_kernel_available()
    )
    if use_cuda:  # pragma: no cover - exercised only with CUDA + mamba-ssm
        fn = _mamba_ssm_scan()
        if fn is None or initial_state is not None:
            raise RuntimeError("backend='cuda' needs mamba-ssm and no initial_state")
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    dt = _prepare_dt(delta, delta_bias, delta_softplus)
    y, last = chunked_scan(
        u,
        dt,
        A,
        B,
        C,
        initial_state=initial_state,
        return_last_state=True,
        **chunk_kwargs,  # type: ignore[arg-type]
    )
    out = _finish(y, u, D, z, u.dtype)
    return (out, last) if return_last_state else out


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    initial_state: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Plain sequential loop over time (the reference for parity tests), same API as above."""
    dt = _prepare_dt(delta, delta_bias, delta_softplus)  # (b, D, L)
    b, dd, L = u.shape
    Bg = B.unsqueeze(1) if B.dim() == 3 else B  # (b, G, N, L)
    Cg = C.unsqueeze(1) if C.dim() == 3 else C
    rep = dd // Bg.shape[1]
    Bd = Bg.float().repeat_interleave(rep, dim=1)  # (b, D, N, L)
    Cd = Cg.float().repeat_interleave(rep, dim=1)
    h = u.new_zeros(b, dd, A.shape[1], dtype=torch.float32)
    if initial_state is not None:
        h = h + initial_state.float()
    ys = []
    for t in range(L):
        da = torch.exp(dt[:, :, t, None] * A.float())
        h = da * h + (dt[:, :, t] * u[:, :, t].float())[..., None] * Bd[..., t]
        ys.append((h * Cd[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(b, dd, 0, dtype=torch.float32)
    out = _finish(y, u, D, z, u.dtype)
    return (out, h) if return_last_state else out


__all__ = [
    "DEFAULT_LOG_DECAY_BOUND",
    "DEFAULT_MAX_CHUNK",
    "chunked_scan",
    "cuda_kernel_available",
    "plan_blocks",
    "selective_scan",
    "selective_scan_ref",
]

"""Selective scan: chunked PyTorch backend against a plain sequential loop (fp32)."""

from __future__ import annotations

import pytest
import torch

from wsirisk.models import scan
from wsirisk.models.scan import (
    chunked_scan,
    cuda_kernel_available,
    plan_blocks,
    selective_scan,
    selective_scan_ref,
)


def _inputs(
    b: int = 2, d: int = 6, n: int = 4, length: int = 40, groups: int = 1, dt_scale: float = 1.0
) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    bc_shape = (b, n, length) if groups == 1 else (b, groups, n, length)
    return [
        torch.randn(b, d, length, generator=g).requires_grad_(),  # u
        (torch.randn(b, d, length, generator=g) * dt_scale).requires_grad_(),  # delta
        (-torch.rand(d, n, generator=g) * 16 - 0.5).requires_grad_(),  # A
        torch.randn(*bc_shape, generator=g).requires_grad_(),  # B
        torch.randn(*bc_shape, generator=g).requires_grad_(),  # C
        torch.randn(d, generator=g).requires_grad_(),  # D
        torch.randn(b, d, length, generator=g).requires_grad_(),  # z
        torch.randn(d, generator=g).requires_grad_(),  # delta_bias
    ]


def _run(fn, ins: list[torch.Tensor], **kw: object) -> list[torch.Tensor]:
    for t in ins:
        t.grad = None
    y, last = fn(*ins, delta_softplus=True, return_last_state=True, **kw)
    w = torch.linspace(-1, 1, y.shape[-1])
    ((y * w).sum() + (last**2).sum()).backward()
    return [y.detach(), last.detach()] + [t.grad.clone() for t in ins]


def _assert_close(a: list[torch.Tensor], b: list[torch.Tensor], rtol: float = 1e-4) -> None:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert torch.isfinite(y).all(), i
        scale = x.abs().max().clamp(min=1e-6)
        assert ((x - y).abs().max() / scale).item() < rtol, i


@pytest.mark.parametrize("checkpoint", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("max_chunk", [1, 7, 64])
def test_parity_with_sequential_loop(groups: int, max_chunk: int, checkpoint: bool) -> None:
    ins = _inputs(groups=groups)
    ref = _run(selective_scan_ref, ins)
    ours = _run(selective_scan, ins, backend="torch", max_chunk=max_chunk, checkpoint=checkpoint)
    _assert_close(ref, ours)


@pytest.mark.parametrize("dt_scale", [10.0, 300.0])
def test_parity_large_dt_stress(dt_scale: float) -> None:
    # softplus(300 * randn) reaches dt ~ 1e3: dt*A ~ -1e4 per step, far beyond exp's range.
    ins = _inputs(dt_scale=dt_scale, length=50)
    ref = _run(selective_scan_ref, ins)
    ours = _run(selective_scan, ins, backend="torch", max_chunk=16, log_decay_bound=30.0)
    _assert_close(ref, ours)


@pytest.mark.parametrize("block_elems", [1, 500, 1 << 22])  # 1 chunk, a few, all per block
def test_parity_long_sequence_many_chunks_and_initial_state(
    block_elems: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan, "BLOCK_ELEMS", block_elems)
    ins = _inputs(b=1, d=4, n=3, length=300)
    h0 = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(5), requires_grad=True)
    ref = _run(selective_scan_ref, ins + [], initial_state=h0)
    g_ref = h0.grad.clone()
    h0.grad = None
    ours = _run(selective_scan, ins, backend="torch", max_chunk=32, initial_state=h0)
    _assert_close(ref, ours)
    assert torch.allclose(g_ref, h0.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block_elems", [1, 64, 1 << 20])
def test_blocks_cover_sequence_and_respect_decay_bound(block_elems: int) -> None:
    g = torch.Generator().manual_seed(1)
    dt = torch.rand(1, 3, 203, generator=g) * 2.0
    dt[0, 1, 50] = 1e4  # one huge step: it must start a chunk, never sit inside one
    A = -torch.rand(3, 4, generator=g) * 10
    bound = 25.0
    blocks = plan_blocks(dt, A, bound, max_chunk=64, step_elems=2, block_elems=block_elems)
    m = (dt[0] * A.abs().amax(1)[:, None]).amax(0)
    pos, starts = 0, set()
    for p, k, T in blocks:
        assert p == pos and k >= 1 and 1 <= T <= 64
        assert block_elems < 2 * T or 2 * k * T <= block_elems  # cache-sized unless 1 chunk
        for s in range(p, p + k * T, T):
            assert m[s + 1 : s + T].sum().item() < bound  # the first step's decay is free
            starts.add(s)
        pos = p + k * T
    assert pos == 203 and 50 in starts
    # smooth dt: long uniform chunks, few blocks
    smooth = plan_blocks(torch.full((1, 3, 1000), 0.01), A, bound, 64, 2, 1 << 20)
    assert [T for _, _, T in smooth] == [64] * len(smooth[:-2]) + [T for _, _, T in smooth[-2:]]


def test_no_grad_forward_and_float64_inputs_run() -> None:
    ins = [t.detach().double() for t in _inputs(length=20)]
    with torch.no_grad():
        y = chunked_scan(ins[0], torch.nn.functional.softplus(ins[1]), ins[2], ins[3], ins[4])
    assert y.shape == (2, 6, 20) and y.dtype == torch.float32


def test_inference_mode_on_parallel_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slabs run on pool threads: the caller's torch.inference_mode() must reach them."""
    monkeypatch.setattr(scan, "SCAN_THREADS", 2)
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ins = [t.detach() for t in _inputs(d=8, length=30)]
        dt = torch.nn.functional.softplus(ins[1])
        with torch.no_grad():
            expected = chunked_scan(ins[0], dt, ins[2], ins[3], ins[4])
        with torch.inference_mode():
            got = chunked_scan(ins[0], dt, ins[2], ins[3], ins[4])
    finally:
        torch.set_num_threads(prev)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.skipif(not cuda_kernel_available(), reason="needs CUDA and mamba-ssm")
def test_parity_with_mamba_ssm_kernel() -> None:  # pragma: no cover - GPU only
    ins = [t.detach().cuda().requires_grad_() for t in _inputs(b=2, d=64, n=16, length=512)]
    kernel = _run(selective_scan, ins, backend="cuda")
    ours = _run(selective_scan, ins, backend="torch")
    _assert_close([t.cpu() for t in kernel], [t.cpu() for t in ours], rtol=2e-3)

"""Registry and baseline models: interface, shapes, gradients, missing modalities."""

from __future__ import annotations

import pytest
import torch

from wsirisk.models import MODEL_NAMES, build_model, nll_loss

SIZES = [5, 7, 3, 6, 4, 8]
PATH_DIM = 32
SMALL = {
    "me_mamba": {"dim": 16, "n_layers": 1, "n_fusion_layers": 1},
    "transmil": {"hidden": 16, "trans_dim": 32},
    "survmamba": {"dim": 16, "region_patches": 4},  # no coords: runs of 4 patches as regions
    "adamhf": {"dim": 16},
    "m4survive": {"dim": 16},
}


def _inputs(n: int = 11, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, PATH_DIM, generator=g), [torch.randn(s, generator=g) for s in SIZES]


def _build(name: str, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    opts = dict(SMALL.get(name, {"hidden": 16}))
    opts.update(kw)
    return build_model(name, path_dim=PATH_DIM, omics_sizes=SIZES, n_bins=4, **opts)


def test_registry_names_and_unknown() -> None:
    assert set(MODEL_NAMES) == {
        "snn",
        "abmil",
        "abmil_snn",
        "mcat",
        "transmil",
        "me_mamba",
        "survmamba",
        "adamhf",
        "m4survive",
    }
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope", omics_sizes=SIZES)
    with pytest.raises(ValueError, match="omics_sizes"):
        build_model("snn")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_interface(name: str) -> None:
    model = _build(name).eval()
    x_path, x_omics = _inputs()
    out = model(x_path if "pathology" in model.modalities else None, x_omics)
    assert isinstance(model.modalities, set)
    assert model.modalities <= {"pathology", "genomics"}
    assert out.logits.shape == (1, 4)
    assert out.aux_loss.dim() == 0
    if out.attention is not None:
        assert out.attention.shape == (11,)
        assert out.attention.sum().item() == pytest.approx(1.0, abs=1e-5)
    for v in out.embeddings.values():
        assert v.dim() == 2 and v.shape[1] > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_parameter_used_gets_gradient(name: str) -> None:
    model = _build(name).train()
    x_path, x_omics = _inputs()
    out = model(x_path if "pathology" in model.modalities else None, x_omics)
    loss = nll_loss(out.logits, torch.tensor([1]), torch.tensor([0.0])) + out.aux_loss
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not [n for n in missing if n not in _unrouted_experts(model)], missing


def _unrouted_experts(model: torch.nn.Module) -> set[str]:
    """Parameters of top-1 experts that got no token in the last forward (AdaMHF's PREE)."""
    out = set()
    for name, module in model.named_modules():
        counts = getattr(module, "last_counts", None)
        if counts is None:
            continue
        for e in torch.nonzero(counts == 0).flatten().tolist():
            out |= {f"{name}.experts.{e}.{p}" for p, _ in module.experts[e].named_parameters()}
    return out


def test_unimodal_models_reject_missing_modality() -> None:
    x_path, x_omics = _inputs()
    with pytest.raises(ValueError, match="genomic"):
        _build("snn")(x_path, None)
    with pytest.raises(ValueError, match="pathology"):
        _build("abmil")(None, x_omics)
    with pytest.raises(ValueError, match="x_path must be"):
        _build("abmil")(torch.randn(3, PATH_DIM + 1), None)


@pytest.mark.parametrize("name", ["abmil_snn", "mcat", "transmil", "me_mamba", "adamhf"])
def test_fusion_models_run_with_one_modality(name: str) -> None:
    model = _build(name).eval()
    x_path, x_omics = _inputs()
    full = model(x_path, x_omics).logits
    no_omics = model(x_path, None)
    no_path = model(None, x_omics)
    assert no_omics.logits.shape == no_path.logits.shape == (1, 4)
    assert no_omics.attention is not None and no_omics.attention.shape == (11,)
    assert no_path.attention is None
    assert not torch.allclose(full, no_omics.logits)
    assert not torch.allclose(full, no_path.logits)
    with pytest.raises(ValueError, match="neither"):
        model(None, None)


def test_abmil_attention_is_permutation_equivariant() -> None:
    model = _build("abmil").eval()
    x_path, _ = _inputs()
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(3))
    a, b = model(x_path, None), model(x_path[perm], None)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert torch.allclose(a.attention[perm], b.attention, atol=1e-6)


def test_deterministic_in_eval() -> None:
    x_path, x_omics = _inputs()
    a = _build("abmil_snn").eval()(x_path, x_omics).logits
    b = _build("abmil_snn").eval()(x_path, x_omics).logits
    assert torch.equal(a, b)

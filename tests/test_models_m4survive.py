"""M4Survive: modality tokens, the Mamba adapter over the joint sequence, extras, Cox read-outs."""

from __future__ import annotations

import pytest
import torch

from wsirisk.models import build_model, cox_survival, output_risk, survival_from_logits
from wsirisk.models.m4survive import slide_index

SIZES = [5, 7, 3, 6, 4, 8]
PATH_DIM = 24


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("m4survive", path_dim=PATH_DIM, omics_sizes=SIZES, dim=16, **kw).eval()


def _inputs(n: int = 30, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(n, 2, generator=g) * 5000
    coords[n // 2 :, 0] += 120_000  # a second slide, 100 mm further right
    return (
        torch.randn(n, PATH_DIM, generator=g),
        [torch.randn(s, generator=g) for s in SIZES],
        coords,
    )


def test_slides_are_told_apart_by_coordinates() -> None:
    _, _, coords = _inputs()
    assert slide_index(coords).tolist() == [0] * 15 + [1] * 15
    model = _model()
    x_path, x_omics, coords = _inputs()
    tokens = model._path_tokens(x_path, coords)[0]
    torch.testing.assert_close(tokens, torch.stack([x_path[:15].mean(0), x_path[15:].mean(0)]))
    per_patient = _model(path_tokens="patient")._path_tokens(x_path, coords)[0]
    torch.testing.assert_close(per_patient, x_path.mean(0, keepdim=True))


def test_adapter_scans_the_joint_sequence_in_order() -> None:
    """Unidirectional scan over [pathology slides, genomic groups]: changing a pathology token
    changes the genomic tokens' outputs (state carried along the sequence), changing a genomic
    token leaves the earlier pathology outputs alone."""
    model = _model()
    x_path, x_omics, coords = _inputs()
    base = model(x_path, x_omics, coords=coords)
    other_path = model(x_path + 1.0, x_omics, coords=coords)
    assert not torch.allclose(base.embeddings["genomics"], other_path.embeddings["genomics"])
    other_omics = [g.clone() for g in x_omics]
    other_omics[5] = other_omics[5] + 2.0  # the last token of the sequence
    late = model(x_path, other_omics, coords=coords)
    torch.testing.assert_close(late.embeddings["pathology"], base.embeddings["pathology"])
    assert not torch.allclose(late.risk, base.risk)
    # with a bidirectional adapter the later token reaches the earlier ones too
    bi = _model(bidirectional=True)
    a, b = bi(x_path, x_omics, coords=coords), bi(x_path, other_omics, coords=coords)
    assert not torch.allclose(a.embeddings["pathology"], b.embeddings["pathology"])


def test_extra_modality_changes_the_output_only_when_given() -> None:
    model = _model(extra_dims={"radiology": 4}, extra_tokens=2)
    assert model.modalities == {"pathology", "genomics", "radiology"}
    x_path, x_omics, coords = _inputs()
    rad = torch.randn(4, generator=torch.Generator().manual_seed(9))
    without = model(x_path, x_omics, coords=coords)
    for ignored in (None, {}, {"other": torch.randn(3)}):
        torch.testing.assert_close(
            model(x_path, x_omics, coords=coords, extra=ignored).risk, without.risk
        )
    given = model(x_path, x_omics, coords=coords, extra={"radiology": rad})
    assert not torch.allclose(given.risk, without.risk)
    assert given.embeddings["radiology"].shape == (1, 16)
    changed = model(x_path, x_omics, coords=coords, extra={"radiology": rad * 2})
    assert not torch.allclose(given.risk, changed.risk)
    only_extra = model(None, None, extra={"radiology": rad})
    assert torch.isfinite(only_extra.risk).all()
    with pytest.raises(ValueError, match="4 values"):
        model(x_path, x_omics, extra={"radiology": torch.randn(5)})
    # a model without extras ignores them
    plain = _model()
    torch.testing.assert_close(
        plain(x_path, x_omics, coords=coords, extra={"radiology": rad}).risk,
        plain(x_path, x_omics, coords=coords).risk,
    )


def test_risk_is_the_log_hazard_and_logits_give_the_cox_curve() -> None:
    model = _model()
    x_path, x_omics, coords = _inputs()
    out = model(x_path, x_omics, coords=coords)
    assert out.risk.shape == (1,) and abs(out.risk.item()) < 3.0  # bounded in (-3, 3)
    torch.testing.assert_close(output_risk(out), out.risk)
    baseline = [0.1, 0.3, 0.35, 1.2]
    model.set_baseline(baseline)
    out = model(x_path, x_omics, coords=coords)
    torch.testing.assert_close(
        survival_from_logits(out.logits), cox_survival(out.risk, baseline), atol=1e-6, rtol=1e-5
    )
    state = model.state_dict()
    assert torch.equal(state["baseline_cumhaz"], torch.tensor(baseline))
    with pytest.raises(ValueError, match="4 values"):
        model.set_baseline([0.1, 0.2])


def test_missing_modalities_and_attention_pooling() -> None:
    model = _model(path_pool="attention")
    x_path, x_omics, coords = _inputs()
    full = model(x_path, x_omics, coords=coords)
    assert full.attention is not None and full.attention.shape == (30,)
    assert full.attention.sum().item() == pytest.approx(1.0, abs=1e-5)
    # each slide's patches share the slide's half of the attention mass
    assert full.attention[:15].sum().item() == pytest.approx(0.5, abs=1e-5)
    for out in (model(x_path, None, coords=coords), model(None, x_omics)):
        assert torch.isfinite(out.risk).all() and not torch.allclose(out.risk, full.risk)
    assert model(None, x_omics).attention is None
    with pytest.raises(ValueError, match="neither"):
        model(None, None)


def test_runs_under_inference_mode() -> None:
    """`wsirisk predict` scores under torch.inference_mode; the scan's worker threads too."""
    model = _model()
    x_path, x_omics, coords = _inputs()
    expect = model(x_path, x_omics, coords=coords).risk
    with torch.inference_mode():
        got = model(x_path, x_omics, coords=coords).risk
    torch.testing.assert_close(got, expect)

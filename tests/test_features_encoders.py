"""Encoder registry and weights resolution (wsirisk.features.encoders / .weights)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from wsirisk.features.encoders import (
    CONCH_INSTALL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    EncoderError,
    build_encoder,
    get_spec,
)
from wsirisk.features.weights import WeightsError


def _tiles(n: int, size_px: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, size_px, size_px, 3), dtype=np.uint8))


def test_registry_entries() -> None:
    trunc, uni, conch = get_spec("resnet50_trunc"), get_spec("uni"), get_spec("conch")
    assert (trunc.dim, trunc.input_size_px, trunc.mean, trunc.std) == (
        1024,
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
    )
    assert (uni.dim, uni.input_size_px) == (1024, 224)
    assert (conch.dim, conch.input_size_px) == (512, 448)
    timm_spec = get_spec("test_resnet")  # any timm name: its own pretrained config
    assert (timm_spec.kind, timm_spec.dim, timm_spec.input_size_px) == ("timm", None, 160)
    with pytest.raises(EncoderError, match="unknown encoder 'no_such_net'"):
        get_spec("no_such_net")


def test_resnet50_trunc_is_layer3_pooled_and_loads_a_full_resnet50_file(tmp_path: Path) -> None:
    torch.manual_seed(3)
    full = timm.create_model("resnet50", pretrained=False).eval()
    weights = tmp_path / "resnet50.pth"
    torch.save(full.state_dict(), weights)

    encoder = build_encoder("resnet50_trunc", str(weights))
    attrs = encoder.attrs()
    assert attrs["dim"] == 1024 and attrs["random_init"] is False
    assert attrs["weights"] == str(weights) and attrs["weights_source"] == "config"
    assert attrs["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()

    tiles = _tiles(2, 64)
    captured: dict[str, torch.Tensor] = {}
    full.layer3.register_forward_hook(lambda _m, _i, out: captured.update(layer3=out))
    x = tiles.permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.inference_mode():
        full(x)
        expected = captured["layer3"].mean(dim=(2, 3))
        got = encoder(tiles)
    assert got.shape == (2, 1024)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_random_init_is_explicit_seeded_and_labelled() -> None:
    a = build_encoder("test_resnet", "random", seed=0)
    b = build_encoder("test_resnet", "random", seed=0)
    c = build_encoder("test_resnet", "random", seed=1)
    assert a.params_sha256 == b.params_sha256 != c.params_sha256
    assert a.attrs()["random_init"] is True and a.attrs()["weights"] == "random"
    assert a.attrs()["weights_sha256"] is None
    assert a.dim == 96 and a.input_size_px == 160  # timm model: dim found by a dry forward


def test_weights_map_file_and_offline_hub_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("WSIRISK_WEIGHTS_MAP", raising=False)
    with pytest.raises(WeightsError) as info:
        build_encoder("test_resnet", None)
    message = str(info.value)
    assert "model.safetensors" in message and "timm/test_resnet.r160_in1k" in message
    assert "features.weights" in message

    from safetensors.torch import save_file

    torch.manual_seed(7)
    donor = timm.create_model("test_resnet", pretrained=False)
    (tmp_path / "w").mkdir()
    save_file(donor.state_dict(), str(tmp_path / "w" / "tr.safetensors"))
    weights_map = tmp_path / "weights.yaml"
    weights_map.write_text("test_resnet: w/tr.safetensors\n")
    monkeypatch.setenv("WSIRISK_WEIGHTS_MAP", str(weights_map))
    encoder = build_encoder("test_resnet", "auto")
    assert encoder.weights.source == "map"
    assert encoder.weights.path == tmp_path / "w" / "tr.safetensors"
    torch.testing.assert_close(encoder.net.conv1[0].weight, donor.conv1[0].weight)

    weights_map.write_text("other_net: w/tr.safetensors\n")  # no entry -> hub -> offline
    with pytest.raises(WeightsError, match=str(weights_map)):
        build_encoder("test_resnet", None)


def test_bad_weights_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth does not exist"):
        build_encoder("test_resnet", str(missing))
    wrong = tmp_path / "wrong.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), wrong)
    with pytest.raises(WeightsError, match=r"wrong\.pth: does not fit"):
        build_encoder("resnet50_trunc", str(wrong))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"garbage\.pth: cannot read weights"):
        build_encoder("test_resnet", str(garbage))


@pytest.mark.skipif(importlib.util.find_spec("conch") is not None, reason="conch installed")
def test_conch_without_its_package_says_how_to_get_it() -> None:
    with pytest.raises(EncoderError) as info:
        build_encoder("conch", "random")
    assert CONCH_INSTALL in str(info.value)
    assert "pip install git+https://github.com/Mahmoodlab/CONCH.git" in str(info.value)


def test_uni_architecture_is_vit_large_16_1024d() -> None:
    from wsirisk.features.encoders import _architecture

    with torch.device("meta"):  # shapes only: no 300M-parameter init on this CPU
        net = _architecture(get_spec("uni"))
    assert net.num_features == 1024 and tuple(net.patch_embed.patch_size) == (16, 16)
    assert len(net.blocks) == 24 and net.num_classes == 0

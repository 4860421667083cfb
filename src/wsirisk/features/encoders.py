"""Encoder registry: name -> architecture, output dimension, input size, normalisation.

Named entries: ``resnet50_trunc`` (timm ResNet50 up to layer3 + global average pool, 1024-d,
the ME-Mamba/CLAM backbone), ``uni`` (timm ViT-L/16, 1024-d) and ``conch`` (CONCH ViT-B/16,
512-d, needs the ``conch`` package).  Any other timm model name (``timm.list_models()``) is
used with its classifier removed and its own pretrained config's input size and mean/std.

``build_encoder`` returns an :class:`Encoder` that takes uint8 NHWC tiles and returns
float32 (B, D) features; it records everything the artifact needs (:meth:`Encoder.attrs`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wsirisk.features.weights import (
    HubRef,
    ResolvedWeights,
    WeightsError,
    load_into,
    resolve_weights,
)

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONCH_INSTALL = "pip install git+https://github.com/Mahmoodlab/CONCH.git"


class EncoderError(ValueError):
    """Unknown encoder name or an encoder that cannot be built here."""


@dataclass(frozen=True)
class EncoderSpec:
    """What the registry knows about an encoder before building it."""

    name: str
    kind: str  # "resnet50_trunc" | "uni" | "conch" | "timm"
    dim: int | None  # None: known once built (generic timm models)
    input_size_px: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cuda_amp_dtype: str  # autocast dtype on CUDA: "bfloat16" | "float16"
    channels_last: bool  # CNNs run faster in NHWC (CPU and CUDA)
    hub: HubRef | None
    ignore_prefixes: tuple[str, ...] = ()  # weights-file keys the encoder drops (heads)


REGISTRY: dict[str, EncoderSpec] = {
    "resnet50_trunc": EncoderSpec(
        "resnet50_trunc",
        "resnet50_trunc",
        1024,
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "float16",
        True,
        HubRef("timm/resnet50.tv_in1k", "model.safetensors"),
        ("layer4.", "fc."),
    ),
    "uni": EncoderSpec(
        "uni",
        "uni",
        1024,
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "bfloat16",
        False,
        HubRef("MahmoodLab/UNI", "pytorch_model.bin"),
        ("head.",),
    ),
    "conch": EncoderSpec(
        "conch",
        "conch",
        512,
        448,
        OPENAI_CLIP_MEAN,
        OPENAI_CLIP_STD,
        "float16",
        False,
        HubRef("MahmoodLab/CONCH", "pytorch_model.bin"),
    ),
}


def get_spec(name: str) -> EncoderSpec:
    """Registry entry for ``name``, or a timm model's spec; EncoderError if neither."""
    if name in REGISTRY:
        return REGISTRY[name]
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(name):
        raise EncoderError(
            f"unknown encoder {name!r}: use one of {sorted(REGISTRY)} or a timm model name "
            "(python -c 'import timm; print(timm.list_models())')"
        )
    cfg = get_pretrained_cfg(name)
    input_size = int(cfg.input_size[-1]) if cfg and cfg.input_size else 224
    mean = tuple(cfg.mean) if cfg and cfg.mean else IMAGENET_MEAN
    std = tuple(cfg.std) if cfg and cfg.std else IMAGENET_STD
    hub = None
    if cfg and cfg.hf_hub_id:
        hub = HubRef(cfg.hf_hub_id, cfg.hf_hub_filename or "model.safetensors")
    classifier = (cfg.classifier if cfg else None) or "head"
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return EncoderSpec(
        name,
        "timm",
        None,
        input_size,
        mean,  # type: ignore[arg-type]
        std,  # type: ignore[arg-type]
        "bfloat16",
        False,
        hub,
        tuple(f"{h}." for h in heads),
    )


class ResNetTrunc(nn.Module):
    """ResNet50 stem + layer1..layer3, global average pool -> (B, 1024).

    Submodule names match timm/torchvision ResNet50 so their state dicts load directly
    (layer4 and fc are ignored).
    """

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1 = resnet.conv1, resnet.bn1, resnet.act1
        self.maxpool = resnet.maxpool
        self.layer1, self.layer2, self.layer3 = resnet.layer1, resnet.layer2, resnet.layer3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))


class ConchImage(nn.Module):
    """CONCH image tower: 512-d embeddings before the contrastive projection."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, proj_contrast=False, normalize=False)


def _conch_module(weights: ResolvedWeights) -> nn.Module:
    try:
        from conch.open_clip_custom import create_model_from_pretrained
    except ImportError as exc:
        raise EncoderError(
            f"encoder 'conch' needs the CONCH package, which is not installed: {CONCH_INSTALL} "
            "(weights: https://huggingface.co/MahmoodLab/CONCH, gated)"
        ) from exc
    if weights.path is None:
        from conch.open_clip_custom import create_model

        return ConchImage(create_model("conch_ViT-B-16"))
    model, _ = create_model_from_pretrained("conch_ViT-B-16", checkpoint_path=str(weights.path))
    return ConchImage(model)


def _architecture(spec: EncoderSpec) -> nn.Module:
    """Random-initialised network of ``spec`` (caller seeds the RNG)."""
    import timm

    if spec.kind == "resnet50_trunc":
        return ResNetTrunc(timm.create_model("resnet50", pretrained=False))
    if spec.kind == "uni":
        return timm.create_model(
            "vit_large_patch16_224",
            pretrained=False,
            img_size=224,
            patch_size=16,
            init_values=1e-5,
            num_classes=0,
            dynamic_img_size=True,
        )
    return timm.create_model(spec.name, pretrained=False, num_classes=0)


def params_sha256(module: nn.Module) -> str:
    """Hex sha256 over a module's state dict (names, dtypes, shapes, values)."""
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Encoder(nn.Module):
    """uint8 NHWC tiles -> float32 (B, D) features, with normalisation built in."""

    def __init__(
        self,
        spec: EncoderSpec,
        net: nn.Module,
        weights: ResolvedWeights,
        *,
        dim: int,
        input_size_px: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.spec, self.net, self.weights = spec, net.eval(), weights
        self.dim, self.input_size_px, self.seed = dim, input_size_px, seed
        self.register_buffer("mean_255", torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std_255", torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0)
        self.params_sha256 = params_sha256(net)

    @property
    def name(self) -> str:
        return self.spec.name

    def forward(self, tiles_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 on the model's device -> (B, D) float32."""
        x = tiles_uint8_nhwc.permute(0, 3, 1, 2).float()  # NCHW view, NHWC memory
        x = (x - self.mean_255) / self.std_255
        if not self.spec.channels_last:
            x = x.contiguous()
        return self.net(x).float()

    def transform(self) -> dict[str, Any]:
        """What is done to a tile before the network (besides resizing, see dataset)."""
        return {
            "input_size_px": self.input_size_px,
            "mean": list(self.spec.mean),
            "std": list(self.spec.std),
            "scale": "uint8 / 255, then (x - mean) / std",
        }

    def attrs(self) -> dict[str, Any]:
        """The artifact attributes that identify this encoder."""
        return {
            "encoder": self.name,
            "dim": self.dim,
            "weights": self.weights.label,
            "weights_source": self.weights.source,
            "weights_sha256": self.weights.sha256,
            "random_init": self.weights.random_init,
            "random_seed": self.seed if self.weights.random_init else None,
            "params_sha256": self.params_sha256,
        }


def build_encoder(
    name: str,
    weights: str | None,
    *,
    weights_map: str | Path | None = None,
    seed: int = 0,
    input_size_px: int | None = None,
) -> Encoder:
    """Build encoder ``name`` with its weights resolved (see wsirisk.features.weights).

    Random init (``weights="random"``) is seeded with ``seed`` so reruns (and resumed runs)
    get the same network.  ``input_size_px`` overrides the registry's input size.
    """
    spec = get_spec(name)
    resolved = resolve_weights(name, weights, weights_map=weights_map, hub=spec.hub)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.kind == "conch":
            net = _conch_module(resolved)
        else:
            net = _architecture(spec)
            if resolved.path is not None:
                extra = load_into(net, resolved.path, spec.ignore_prefixes)
                if extra:
                    log.warning(
                        "%s: %d unused weight(s), e.g. %s", resolved.path, len(extra), extra[0]
                    )
    net.eval()
    size = int(input_size_px or spec.input_size_px)
    dim = spec.dim
    if dim is None:
        with torch.inference_mode():
            dim = int(net(torch.zeros(1, 3, size, size)).shape[-1])
    if spec.channels_last:
        net = net.to(memory_format=torch.channels_last)
    log.info("encoder %s: %d-d, input %d px, weights %s", name, dim, size, resolved.label)
    return Encoder(spec, net, resolved, dim=dim, input_size_px=size, seed=seed)


__all__ = [
    "REGISTRY",
    "Encoder",
    "EncoderError",
    "EncoderSpec",
    "WeightsError",
    "build_encoder",
    "get_spec",
    "params_sha256",
]

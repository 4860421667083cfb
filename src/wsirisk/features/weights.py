"""Where an encoder's weights come from: explicit file, weights map, model hub, or random init.

Resolution order for ``features.weights``:

1. ``"random"``: random initialisation (explicit; labelled in the artifact and in reports);
2. a path: that local file (``.safetensors``, ``.bin``/``.pt``/``.pth`` state dict);
3. ``null`` / ``"auto"``: the weights map file (``features.weights_map`` or the
   ``WSIRISK_WEIGHTS_MAP`` environment variable; JSON or YAML ``{encoder: path}``, relative
   paths are relative to the map file), then the model hub (Hugging Face).  Offline
   (``HF_HUB_OFFLINE=1`` or no network) the error names the file to provide.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHTS_MAP_ENV = "WSIRISK_WEIGHTS_MAP"
RANDOM = "random"
_AUTO = {None, "", "auto", "pretrained"}


class WeightsError(RuntimeError):
    """Weights that cannot be found, read or loaded; the message says what to provide."""


@dataclass(frozen=True)
class HubRef:
    """A weights file on the Hugging Face hub."""

    repo_id: str
    filename: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/blob/main/{self.filename}"


@dataclass(frozen=True)
class ResolvedWeights:
    """The weights an encoder was built with."""

    source: str  # "random" | "config" | "map" | "hub"
    path: Path | None
    sha256: str | None

    @property
    def random_init(self) -> bool:
        return self.source == RANDOM

    @property
    def label(self) -> str:
        """``"random"`` or the weights file path (the artifact's ``weights`` attribute)."""
        return RANDOM if self.path is None else str(self.path)


def file_sha256(path: Path, block_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


def _local_file(path: Path, what: str) -> ResolvedWeights:
    if not path.is_file():
        raise WeightsError(f"{what}: weights file {path} does not exist")
    return ResolvedWeights("config" if what == "features.weights" else "map", path, None)


def _read_map(map_path: Path) -> dict[str, str]:
    if not map_path.is_file():
        raise WeightsError(f"weights map {map_path} does not exist")
    text = map_path.read_text()
    try:
        if map_path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse error is reported with the file
        raise WeightsError(f"weights map {map_path}: cannot parse ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise WeightsError(f"weights map {map_path}: expected a mapping encoder -> file path")
    return {str(k): v for k, v in data.items()}


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_weights(
    encoder: str,
    weights: str | None,
    *,
    weights_map: str | Path | None = None,
    hub: HubRef | None = None,
) -> ResolvedWeights:
    """Find the weights file of ``encoder`` (see the module docstring for the order)."""
    if weights == RANDOM:
        resolved = ResolvedWeights(RANDOM, None, None)
    elif weights not in _AUTO:
        resolved = _local_file(Path(str(weights)).expanduser(), "features.weights")
    else:
        resolved = _from_map_or_hub(encoder, weights_map, hub)
    if resolved.path is None:
        return resolved
    return ResolvedWeights(resolved.source, resolved.path, file_sha256(resolved.path))


def _from_map_or_hub(
    encoder: str, weights_map: str | Path | None, hub: HubRef | None
) -> ResolvedWeights:
    map_value = weights_map or os.environ.get(WEIGHTS_MAP_ENV) or None
    map_path = Path(map_value).expanduser() if map_value else None
    if map_path is not None:
        entries = _read_map(map_path)
        if encoder in entries:
            path = Path(entries[encoder]).expanduser()
            if not path.is_absolute():
                path = map_path.parent / path
            return _local_file(path, f"weights map {map_path} [{encoder!r}]")
    where = (
        f"add '{encoder}: /path/to/file' to the weights map {map_path}"
        if map_path
        else f"add it to a weights map file named by features.weights_map or ${WEIGHTS_MAP_ENV}"
    )
    if hub is None:
        raise WeightsError(
            f"no weights for encoder {encoder!r}: set features.weights to a local weights "
            f"file, {where}, or set features.weights: random for an explicit random init"
        )
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(hub.repo_id, hub.filename, local_files_only=_hub_offline())
    except Exception as exc:  # noqa: BLE001 - offline, gated, missing: same remedy
        raise WeightsError(
            f"no weights for encoder {encoder!r}: the model hub did not give {hub.filename} "
            f"of {hub.repo_id} ({type(exc).__name__}). Download {hub.url} on a machine with "
            f"access, then set features.weights: /path/to/{hub.filename} or {where} "
            "(or features.weights: random for an explicit random init)"
        ) from exc
    return ResolvedWeights("hub", Path(path), None)


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """Read a state dict from ``.safetensors`` or a torch file (weights_only), unwrapped."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt/unsupported: name the file
        raise WeightsError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model", "model_state_dict", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_into(module: Any, path: Path, ignore_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Load ``path`` into ``module``; every parameter must be present.  Returns ignored keys."""
    state = load_state_dict_file(path)
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise WeightsError(f"{path}: does not fit the encoder ({exc})") from exc
    if result.missing_keys:
        shown = ", ".join(result.missing_keys[:5])
        raise WeightsError(
            f"{path}: does not fit the encoder: {len(result.missing_keys)} parameter(s) "
            f"missing (e.g. {shown})"
        )
    unexpected = [k for k in result.unexpected_keys if not k.startswith(ignore_prefixes)]
    return unexpected

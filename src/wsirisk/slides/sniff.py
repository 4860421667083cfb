"""Say why OpenSlide could not open a file (missing, not an image, unsupported, corrupt)."""

from __future__ import annotations

import logging
from pathlib import Path

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"PK\x03\x04", "zip"),
)


def _kind(head: bytes) -> str | None:
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    return None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _tiff_problem(path: Path) -> tuple[str, str]:
    import tifffile

    size = path.stat().st_size
    logger = logging.getLogger("tifffile")
    collect, propagate = _Collect(), logger.propagate
    logger.addHandler(collect)
    logger.propagate = False  # tifffile logs damaged IFD chains; we report them instead
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tiled, shape = bool(page.is_tiled), page.shape
            data_end = 0
            for page in tif.pages:  # touches every IFD: a broken chain is logged here
                ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
                data_end = max([data_end, *ends])
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        return "corrupt", f"corrupt or truncated TIFF ({type(exc).__name__}: {exc})"
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
    if data_end > size:
        return "corrupt", f"truncated TIFF: file has {size} bytes, its image data needs {data_end}"
    if collect.messages:
        return "corrupt", f"corrupt TIFF structure ({'; '.join(collect.messages[:3])})"
    if not tiled:
        return (
            "unsupported",
            f"untiled (strip) TIFF {shape}: OpenSlide needs a tiled image; convert it, e.g. "
            "`vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg`",
        )
    return "corrupt", "TIFF that OpenSlide rejects (damaged, or an unsupported layout)"


def diagnose(path: Path) -> tuple[str, str]:
    """(reason_code, reason) for a file OpenSlide failed to open."""
    path = Path(path)
    if not path.is_file():
        return "missing", "no such file"
    size = path.stat().st_size
    if size == 0:
        return "corrupt", "empty file (0 bytes)"
    with path.open("rb") as handle:
        head = handle.read(132)
    kind = _kind(head)
    if kind is None:
        return "not_a_slide", "not an image file (unknown file signature)"
    if kind == "tiff":
        return _tiff_problem(path)
    return "unsupported", f"{kind} file: not a whole-slide format OpenSlide reads"

"""TCGA barcodes: case (participant) vs sample vs portion/analyte/aliquot vs slide.

``TCGA-02-0001`` is a case, ``TCGA-02-0001-01C`` a sample (type 01 = primary solid tumour,
vial C), ``TCGA-02-0001-01C-01D-0182-01`` an aliquot and ``TCGA-02-0001-01Z-00-DX1`` a
diagnostic slide.  Sample types 01-09 are tumours, 10-19 normals, 20-29 controls
(docs/TCGA_Barcode.md).  Slide file names carry a UUID after the barcode
(``TCGA-DM-A28K-01Z-00-DX1.766edac4-....svs``); one case may have several slides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

TUMOUR_SAMPLE_TYPES: frozenset[int] = frozenset(range(1, 10))

_BARCODE = re.compile(
    r"^(?P<case>[A-Z0-9]+-[A-Z0-9]{2}-[A-Z0-9]{4})"
    r"(?:-(?P<sample>\d{2})(?P<vial>[A-Z])?"
    r"(?:-(?P<portion>\d{2})"
    r"(?:(?P<analyte>[A-Z])(?:-(?P<plate>[A-Z0-9]{4})(?:-(?P<center>[A-Z0-9]{2}))?)?"
    r"|-(?P<slide>(?:TS|BS|MS|DX)[A-Z0-9]+))?"
    r")?)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Barcode:
    """One parsed TCGA barcode; fields below its level are None."""

    text: str
    case_id: str
    sample_type: int | None = None
    vial: str | None = None
    portion: str | None = None
    analyte: str | None = None
    plate: str | None = None
    center: str | None = None
    slide: str | None = None

    @property
    def level(self) -> str:
        """'case', 'sample', 'portion', 'analyte', 'aliquot' or 'slide'."""
        if self.slide:
            return "slide"
        if self.center:
            return "aliquot"
        if self.analyte:
            return "analyte"
        if self.portion:
            return "portion"
        if self.sample_type is not None:
            return "sample"
        return "case"

    @property
    def sample_id(self) -> str | None:
        """``TCGA-02-0001-01C`` (sample + vial), or None for a case-level barcode."""
        if self.sample_type is None:
            return None
        return f"{self.case_id}-{self.sample_type:02d}{self.vial or ''}"

    @property
    def is_tumour(self) -> bool | None:
        """True for sample types 01-09, False otherwise, None when the type is unknown."""
        if self.sample_type is None:
            return None
        return self.sample_type in TUMOUR_SAMPLE_TYPES


def parse_barcode(text: str) -> Barcode:
    """Parse a TCGA barcode (or a slide file name ``<barcode>.<uuid>.svs``); ValueError if not one."""
    raw = str(text).strip()
    stem = raw.split(".", 1)[0]
    match = _BARCODE.match(stem)
    if not match:
        raise ValueError(f"not a TCGA barcode: {raw!r}")
    g = match.groupdict()
    return Barcode(
        text=raw,
        case_id=g["case"].upper(),
        sample_type=int(g["sample"]) if g["sample"] else None,
        vial=g["vial"].upper() if g["vial"] else None,
        portion=g["portion"],
        analyte=g["analyte"].upper() if g["analyte"] else None,
        plate=g["plate"].upper() if g["plate"] else None,
        center=g["center"],
        slide=g["slide"].upper() if g["slide"] else None,
    )


def case_id(text: str) -> str:
    """Case (participant) barcode of any barcode: ``TCGA-DJ-A2Q6-01A-11D-A18F-08`` -> ``TCGA-DJ-A2Q6``."""
    return parse_barcode(text).case_id


def keep_sample(text: str, sample_types: Iterable[int] = TUMOUR_SAMPLE_TYPES) -> bool:
    """Whether a barcode's sample type is wanted; case-level barcodes (no type) are kept."""
    code = parse_barcode(text).sample_type
    return code is None or code in set(sample_types)


def parse_sample_types(spec: str) -> frozenset[int]:
    """``"01-09"`` or ``"01,06,11"`` (ranges and lists mix) -> the set of sample type codes."""
    codes: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            start, stop = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(
                f"bad sample type spec {spec!r}: use e.g. '01-09' or '01,06'"
            ) from None
        if not (0 <= start <= stop <= 99):
            raise ValueError(f"bad sample type range {part!r} in {spec!r}")
        codes.update(range(start, stop + 1))
    if not codes:
        raise ValueError(f"empty sample type spec {spec!r}")
    return frozenset(codes)


def split_cell(cell: object) -> list[str]:
    """Sample-sheet cells may list several samples ``"A, B"``: split on commas, drop blanks."""
    if cell is None:
        return []
    text = str(cell)
    if text.lower() in {"nan", "none"}:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def slide_id_from_filename(file_name: str) -> str:
    """Slide id of a slide file: its name without the ``.svs``/``.tif(f)`` extension."""
    name = str(file_name)
    for ext in (".svs", ".tiff", ".tif", ".ndpi", ".mrxs"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def slides_by_case(file_names: Iterable[str]) -> dict[str, list[str]]:
    """Case barcode -> its slide ids (sorted) from slide file names; several per case allowed."""
    out: dict[str, list[str]] = {}
    for name in file_names:
        out.setdefault(case_id(name), []).append(slide_id_from_filename(name))
    return {case: sorted(slides) for case, slides in sorted(out.items())}


def sample_priority(barcode: str) -> tuple[int, str]:
    """Sort key of the one-sample-per-patient rule: primary tumour (type 01) first, then the
    TCGA barcode order (``TCGA-XX-XXXX-01A-11R-...`` before ``...-01B-...``, ``-02A`` ...).

    Works on sample, aliquot and slide barcodes; a non-TCGA id sorts after TCGA ones by text.
    """
    try:
        code = parse_barcode(barcode)
    except ValueError:
        return (2, str(barcode).upper())
    return (0 if code.sample_type == 1 else 1, code.text.split(".", 1)[0].upper())

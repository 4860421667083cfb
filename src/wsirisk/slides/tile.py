"""`wsirisk tile`: segment one slide's tissue and store its 256 px tile grid (zarr + GeoJSON + PNG).

A bad slide (corrupt, not a slide, no MPP, no tissue, too large) never fails the job: it gets
an empty-but-valid store with status "failed"/"skipped" and a reason.  Only invalid options
(or an unsafe id) exit non-zero.  No torch or other heavy import on this path.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.layout import ATTR_REASON, ATTR_STATUS, SLIDE_COORDS, SLIDE_MASK, check_id
from wsirisk.slides import outputs
from wsirisk.slides.grid import ReadPlan, TooCoarseError, plan_read, select_tiles
from wsirisk.slides.options import (
    TILER_VERSION,
    OptionsError,
    TilingOptions,
    params_hash,
    parse_options,
    parse_options_json,
)
from wsirisk.slides.read import SlideOpenError, open_slide
from wsirisk.slides.resolution import NoMppError, find_mpp
from wsirisk.slides.segment import (
    SegImage,
    Segmentation,
    SlideTooLargeError,
    read_seg_image,
    segment_tissue,
)
from wsirisk.slides.sniff import diagnose
from wsirisk.store import atomic_group

SLIDE_TILE_FRACTION = "tissue_fraction"  # float32 (N,): tissue share of each kept tile
MIN_MASK_PX_PER_TILE = 4  # the mask is at least this fine per tile side
# reason codes: ok | missing | not_a_slide | unsupported | corrupt | read_error | no_mpp
#               | too_coarse | too_large | no_tissue | no_tiles | error
REASON_CODE = "reason_code"


@dataclass
class _Outcome:
    attrs: dict[str, Any]
    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    fractions: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    seg_image: SegImage | None = None
    seg: Segmentation | None = None
    plan: ReadPlan | None = None


class _Stop(Exception):
    """A slide that ends early with a status (not an error of the job)."""

    def __init__(self, status: str, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


def _base_attrs(
    slide_path: Path,
    slide_id: str,
    patient_id: str,
    options: TilingOptions,
    mpp_override: float | None,
) -> dict[str, Any]:
    return {
        ATTR_STATUS: "failed",
        ATTR_REASON: "",
        REASON_CODE: "error",
        "slide_id": slide_id,
        "patient_id": patient_id,
        "slide_path": str(slide_path),
        "vendor": None,
        "mpp": None,
        "mpp_source": None,
        "mpp_override": mpp_override,
        "preset": options.preset,
        "target_mpp": options.target_mpp,
        "tile_size_px": options.tile_size_px,
        "overlap_px": options.overlap_px,
        "min_tissue_fraction": options.min_tissue_fraction,
        "segmentation": options.to_dict()["segmentation"],
        "scale": None,
        "read_level": None,
        "read_level_downsample": None,
        "read_size_px": None,
        "tile_size_level0": None,
        "step_level0": None,
        "level0_width": None,
        "level0_height": None,
        "level_dimensions": None,
        "level_downsamples": None,
        "mask_downsample": None,
        "mask_downsample_xy": None,
        "seg_level": None,
        "seg_threshold": None,
        "n_tissue_pieces": 0,
        "n_holes": 0,
        "tissue_area_mm2": 0.0,
        "n_grid_tiles": 0,
        "n_tiles": 0,
        "params_hash": params_hash(options, mpp_override),
        "tiler_version": TILER_VERSION,
    }


def _segment(slide: Any, options: TilingOptions, outcome: _Outcome) -> None:
    """Resolution, read plan, segmentation and tile selection; fills ``outcome``."""
    import openslide

    attrs = outcome.attrs
    try:
        resolution = find_mpp(slide.properties, attrs["mpp_override"], name=attrs["slide_path"])
    except NoMppError as exc:
        raise _Stop("failed", "no_mpp", str(exc)) from exc
    attrs.update(mpp=resolution.mpp, mpp_source=resolution.source)
    try:
        plan = plan_read(
            slide.level_downsamples,
            resolution.mpp,
            options.target_mpp,
            options.tile_size_px,
            options.overlap_px,
            options.scale_snap_tolerance,
        )
    except TooCoarseError as exc:
        raise _Stop("skipped", "too_coarse", str(exc)) from exc
    outcome.plan = plan
    attrs.update(
        scale=plan.scale,
        read_level=plan.read_level,
        read_level_downsample=plan.read_level_downsample,
        read_size_px=plan.read_size_px,
        tile_size_level0=plan.tile_size_level0,
        step_level0=plan.step_level0,
    )
    params = options.segmentation
    target_ds = min(params.seg_downsample, plan.tile_size_level0 / MIN_MASK_PX_PER_TILE)
    try:
        image = read_seg_image(slide, max(1.0, target_ds), params.max_seg_read_mpx)
    except SlideTooLargeError as exc:
        raise _Stop("skipped", "too_large", f"{attrs['slide_path']}: {exc}") from exc
    except openslide.OpenSlideError as exc:
        raise _Stop("failed", "read_error", f"{attrs['slide_path']}: read failed: {exc}") from exc
    outcome.seg_image = image
    dsx, dsy = image.downsample_x, image.downsample_y
    attrs.update(
        mask_downsample=(dsx + dsy) / 2,
        mask_downsample_xy=[dsx, dsy],
        seg_level=image.level,
    )
    seg = segment_tissue(image.rgb, params, dsx, dsy)
    outcome.seg = seg
    tissue_px = int(np.count_nonzero(seg.tissue_mask))
    attrs.update(
        seg_threshold=seg.threshold,
        n_tissue_pieces=len(seg.contours),
        n_holes=sum(len(h) for h in seg.holes),
        tissue_area_mm2=tissue_px * dsx * dsy * resolution.mpp**2 / 1e6,
    )
    if not seg.contours:
        raise _Stop(
            "skipped",
            "no_tissue",
            f"no tissue found (saturation threshold {seg.threshold}, pieces must exceed "
            f"{params.min_tissue_area_level0:g} level-0 px)",
        )
    width0, height0 = slide.level_dimensions[0]
    coords, fractions = select_tiles(
        seg.tissue_mask,
        seg.hole_mask,
        width0,
        height0,
        plan,
        options.min_tissue_fraction,
        dsx,
        dsy,
    )
    n_x = math.ceil(width0 / plan.step_level0)
    n_y = math.ceil(height0 / plan.step_level0)
    attrs.update(n_grid_tiles=n_x * n_y, n_tiles=len(coords))
    outcome.coords, outcome.fractions = coords, fractions
    if not len(coords):
        raise _Stop(
            "skipped",
            "no_tiles",
            f"tissue found but no tile reaches min_tissue_fraction {options.min_tissue_fraction:g}",
        )


def _process(slide_path: Path, options: TilingOptions, outcome: _Outcome) -> None:
    attrs = outcome.attrs
    try:
        slide = open_slide(slide_path)
    except SlideOpenError as exc:
        code, why = diagnose(slide_path)
        reason = str(exc) if code == "missing" else f"{exc}; {why}"
        raise _Stop("failed", code, reason) from exc
    try:
        width0, height0 = slide.level_dimensions[0]
        attrs.update(
            vendor=slide.properties.get("openslide.vendor"),
            level0_width=int(width0),
            level0_height=int(height0),
            level_dimensions=[[int(w), int(h)] for w, h in slide.level_dimensions],
            level_downsamples=[float(d) for d in slide.level_downsamples],
        )
        try:
            _segment(slide, options, outcome)
        except _Stop:
            if outcome.seg_image is None:
                _preview(slide, options, outcome)
            raise
    finally:
        slide.close()


def _preview(slide: Any, options: TilingOptions, outcome: _Outcome) -> None:
    """Best-effort low-res image for the thumbnail of a slide that stopped early."""
    try:
        params = options.segmentation
        outcome.seg_image = read_seg_image(slide, params.seg_downsample, params.max_seg_read_mpx)
    except Exception:  # noqa: BLE001 - the thumbnail falls back to a placeholder
        outcome.seg_image = None


def tile_slide(
    slide_path: Path | str,
    out: Path | str,
    *,
    slide_id: str,
    patient_id: str,
    options: TilingOptions | dict[str, Any] | None = None,
    mpp_override: float | None = None,
    geojson: Path | str | None = None,
    thumbnail: Path | str | None = None,
) -> dict[str, Any]:
    """Tile one slide into ``out`` (zarr); returns the store's attributes.

    Raises OptionsError / ValueError only for invalid options or ids; every slide problem is
    recorded in the returned attrs (status, reason, reason_code) and in the outputs.
    """
    opts = options if isinstance(options, TilingOptions) else parse_options(options)
    check_id(slide_id, "slide_id")
    check_id(patient_id, "patient_id")
    if mpp_override is not None and not (math.isfinite(mpp_override) and mpp_override > 0):
        raise ValueError(f"mpp_override must be a positive number, got {mpp_override!r}")
    slide_path = Path(slide_path)
    outcome = _Outcome(_base_attrs(slide_path, slide_id, patient_id, opts, mpp_override))
    attrs = outcome.attrs
    try:
        _process(slide_path, opts, outcome)
        attrs.update({ATTR_STATUS: "ok", ATTR_REASON: "", REASON_CODE: "ok"})
    except _Stop as stop:
        attrs.update({ATTR_STATUS: stop.status, ATTR_REASON: stop.reason, REASON_CODE: stop.code})
    except Exception as exc:  # noqa: BLE001 - one bad slide must not stop the cohort
        traceback.print_exc(file=sys.stderr)
        attrs.update(
            {
                ATTR_STATUS: "failed",
                ATTR_REASON: f"{slide_path}: {type(exc).__name__}: {exc}",
                REASON_CODE: "error",
            }
        )
    ok = attrs[ATTR_STATUS] == "ok"
    if not ok:
        outcome.coords = np.zeros((0, 2), np.int64)
        outcome.fractions = np.zeros((0,), np.float32)
        attrs["n_tiles"] = 0
    _write_outputs(Path(out), outcome, geojson, thumbnail, slide_id)
    return dict(attrs)


def _write_outputs(
    out: Path,
    outcome: _Outcome,
    geojson: Path | str | None,
    thumbnail: Path | str | None,
    slide_id: str,
) -> None:
    attrs, image, seg = outcome.attrs, outcome.seg_image, outcome.seg
    ok = attrs[ATTR_STATUS] == "ok"
    if geojson is not None:
        dsx, dsy = attrs["mask_downsample_xy"] or (1.0, 1.0)
        collection = outputs.to_geojson(seg if ok else None, dsx, dsy, slide_id)
        outputs.write_geojson(Path(geojson), collection)
    if thumbnail is not None:
        if image is None:
            picture = outputs.placeholder_thumbnail()
        else:
            tile_level0 = attrs["tile_size_level0"] or 0
            picture = outputs.draw_thumbnail(
                image.rgb, seg, outcome.coords, tile_level0, image.downsample_x, image.downsample_y
            )
        outputs.write_png(Path(thumbnail), picture)
    mask = seg.tissue_mask if (ok and seg is not None) else np.zeros((0, 0), np.uint8)
    with atomic_group(out, attrs) as group:
        n = len(outcome.coords)
        group.create_array(SLIDE_COORDS, data=outcome.coords, chunks=(max(1, min(n, 65536)), 2))
        group.create_array(SLIDE_TILE_FRACTION, data=outcome.fractions)
        group.create_array(SLIDE_MASK, data=mask)


# ---- CLI ---------------------------------------------------------------------------------


def _mpp_arg(text: str) -> float | None:
    """--mpp-override value: a positive float; '', 'nan', 'none', 'na' mean no override."""
    if text.strip().lower() in {"", "nan", "none", "na", "null"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive um/px value, got {text!r}")
    return value


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slide", type=Path, help="whole-slide image (anything OpenSlide reads)")
    parser.add_argument("--slide-id", required=True)
    parser.add_argument("--patient-id", required=True)
    parser.add_argument("--out", required=True, type=Path, help="output slide store (.zarr)")
    parser.add_argument("--geojson", type=Path, help="tissue polygons (QuPath GeoJSON)")
    parser.add_argument("--thumbnail", type=Path, help="QC thumbnail (.png)")
    parser.add_argument(
        "--options", default="{}", help="the config's `slides` section as a JSON object"
    )
    parser.add_argument(
        "--mpp-override", type=_mpp_arg, default=None, help="level-0 um/px (wins over metadata)"
    )


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        options = parse_options_json(args.options)
        attrs = tile_slide(
            args.slide,
            args.out,
            slide_id=args.slide_id,
            patient_id=args.patient_id,
            options=options,
            mpp_override=args.mpp_override,
            geojson=args.geojson,
            thumbnail=args.thumbnail,
        )
    except (OptionsError, ValueError) as exc:
        print(f"wsirisk tile: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(
        f"{attrs['slide_id']}: {attrs[ATTR_STATUS]} {attrs['n_tiles']} tiles "
        f"(mpp {attrs['mpp']} from {attrs['mpp_source']}, level {attrs['read_level']}, "
        f"read {attrs['read_size_px']} px) in {seconds:.2f} s"
        + (f": {attrs[ATTR_REASON]}" if attrs[ATTR_REASON] else ""),
        file=sys.stderr,
    )
    return 0

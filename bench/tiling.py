"""Benchmark: tissue segmentation + tiling, in-process and as a whole `wsirisk tile` job.

Cases: the big synthetic 40x slide of ../shared/tools/make_big_slide.py (60000 x 45000 px,
generated under /tmp with --make-big, ~2 min) tiled at 20x (reads 512 px at level 0) and at
40x (256 px), and the real slides of ../shared/data/wsi.  Each case is compared with CLAM's
create_patches_fp output in ../shared/data/reference/clam: both tile sets are rasterised on
an 8 px level-0 grid and we report the IoU of the covered area ("raw") and of the covered
tissue (only area inside our tissue mask).

    .venv/bin/python bench/tiling.py [--make-big] [--big /tmp/wsirisk_bench/big.svs] [--repeats 3]

Prints one line per case and ends with one JSON line: {"bench": "tiling", "cases": {name:
{"seconds", "tiles_per_s", ...}}}, where `<case>/in_process` times segmentation + tiling
(open, low-res read, segmentation, tile selection) and `<case>/job` a whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zarr

from wsirisk.layout import SLIDE_COORDS, SLIDE_MASK
from wsirisk.slides.compare import coverage_iou, mask_raster, read_coords_csv
from wsirisk.slides.grid import plan_read, select_tiles
from wsirisk.slides.options import parse_options
from wsirisk.slides.read import open_slide
from wsirisk.slides.resolution import find_mpp
from wsirisk.slides.segment import read_seg_image, segment_tissue
from wsirisk.slides.tile import MIN_MASK_PX_PER_TILE, tile_slide

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WSIRISK_SHARED", REPO.parent / "shared"))
BIG_NAME = "synthetic_big_40x.svs"  # the name enters the file: keep it for byte-identity
CLAM_AT1 = {"segmentation": {"min_tissue_area_level0": 512 * 512}}
# CLAM create_patches_fp timings measured on this kind of machine (reference/clam/README.md)
# (in_process = segmentation + patching; for the real slides only segmentation is known)
CLAM_SECONDS = {
    "big40x_p512": {"in_process": 0.27, "job": 1.13},
    "big40x_p256": {"in_process": 0.60, "job": 1.45},
    "cmu": {"segmentation": 0.42, "job": 1.52},
    "tcga_cr": {"segmentation": 0.42, "job": 1.47},
}


def _median_time(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up (page cache, library init)
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _segment_and_tile(path: Path, options: dict, mpp: float | None) -> tuple[float, float, int]:
    """(segmentation s, tile selection s, n_tiles) of one in-process run, no outputs."""
    opts = parse_options(options)
    start = time.perf_counter()
    slide = open_slide(path)
    resolution = find_mpp(slide.properties, mpp)
    plan = plan_read(
        slide.level_downsamples,
        resolution.mpp,
        opts.target_mpp,
        opts.tile_size_px,
        opts.overlap_px,
        opts.scale_snap_tolerance,
    )
    seg_ds = min(opts.segmentation.seg_downsample, plan.tile_size_level0 / MIN_MASK_PX_PER_TILE)
    image = read_seg_image(slide, seg_ds, opts.segmentation.max_seg_read_mpx)
    seg = segment_tissue(image.rgb, opts.segmentation, image.downsample_x, image.downsample_y)
    seg_s = time.perf_counter() - start
    start = time.perf_counter()
    width, height = slide.level_dimensions[0]
    coords, _ = select_tiles(
        seg.tissue_mask,
        seg.hole_mask,
        width,
        height,
        plan,
        opts.min_tissue_fraction,
        image.downsample_x,
        image.downsample_y,
    )
    tile_s = time.perf_counter() - start
    slide.close()
    return seg_s, tile_s, len(coords)


def _wsirisk_cmd() -> list[str]:
    script = Path(sys.executable).with_name("wsirisk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wsirisk.cli"]


def _job(path: Path, out: Path, options: dict, mpp: float | None) -> None:
    cmd = [*_wsirisk_cmd(), "tile", str(path), "--slide-id", "BENCH", "--patient-id", "P"]
    cmd += ["--out", str(out / "job.zarr"), "--geojson", str(out / "job.geojson")]
    cmd += ["--thumbnail", str(out / "job.png"), "--options", json.dumps(options)]
    if mpp is not None:
        cmd += ["--mpp-override", str(mpp)]
    subprocess.run(cmd, check=True, capture_output=True)


def bench_case(
    name: str, path: Path, options: dict, mpp: float | None, clam_ref: str | None, repeats: int
) -> dict[str, dict]:
    work = Path(tempfile.mkdtemp(prefix="wsirisk_bench_"))
    try:
        runs = []
        _segment_and_tile(path, options, mpp)  # warm-up
        for _ in range(repeats):
            runs.append(_segment_and_tile(path, options, mpp))
        seg_s = statistics.median(r[0] for r in runs)
        tile_s = statistics.median(r[1] for r in runs)
        n_tiles = runs[0][2]
        full_s, attrs = _median_time(
            lambda: tile_slide(
                path,
                work / "full.zarr",
                slide_id="BENCH",
                patient_id="P",
                options=options,
                mpp_override=mpp,
                geojson=work / "full.geojson",
                thumbnail=work / "full.png",
            ),
            repeats,
        )
        job_s, _ = _median_time(lambda: _job(path, work, options, mpp), repeats)
        in_process = seg_s + tile_s
        result = {
            f"{name}/in_process": {
                "seconds": round(in_process, 4),
                "tiles_per_s": round(n_tiles / in_process, 1),
                "segmentation_s": round(seg_s, 4),
                "tiling_s": round(tile_s, 4),
                "with_outputs_s": round(full_s, 4),
                "n_tiles": n_tiles,
                "clam_seconds": CLAM_SECONDS.get(name, {}).get("in_process"),
                "clam_segmentation_s": CLAM_SECONDS.get(name, {}).get("segmentation"),
            },
            f"{name}/job": {
                "seconds": round(job_s, 4),
                "tiles_per_s": round(n_tiles / job_s, 1),
                "n_tiles": n_tiles,
                "clam_seconds": CLAM_SECONDS.get(name, {}).get("job"),
            },
        }
        if clam_ref:
            group = zarr.open_group(str(work / "full.zarr"), mode="r")
            coords, mask = group[SLIDE_COORDS][:], group[SLIDE_MASK][:]
            clam_csv = SHARED / "data" / "reference" / "clam" / f"{clam_ref}.coords.csv"
            clam_attrs = json.loads(clam_csv.with_suffix("").with_suffix(".attrs.json").read_text())
            clam = read_coords_csv(clam_csv)
            width, height = attrs["level0_width"], attrs["level0_height"]
            tile, clam_tile = attrs["tile_size_level0"], int(clam_attrs["patch_size"])
            tissue = mask_raster(mask, *attrs["mask_downsample_xy"], width, height, 8)
            raw = coverage_iou(coords, tile, clam, clam_tile, width, height, 8)
            within = coverage_iou(coords, tile, clam, clam_tile, width, height, 8, within=tissue)
            result[f"{name}/in_process"].update(
                clam_n_tiles=len(clam), iou_raw=round(raw, 4), iou_tissue=round(within, 4)
            )
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _big_slide(path: Path, make: bool) -> Path | None:
    if path.is_file():
        return path
    tool = SHARED / "tools" / "make_big_slide.py"
    if not make or not tool.is_file():
        print(f"big slide {path} missing (pass --make-big to generate it, ~2 min)")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"generating {path} ...", flush=True)
    cmd = [sys.executable, str(tool), "--out", str(path), "--seed", "0"]
    subprocess.run(cmd, check=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=Path, default=Path("/tmp/wsirisk_bench") / BIG_NAME)
    parser.add_argument("--make-big", action="store_true", help="generate the big slide")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cases: list[tuple[str, Path, dict, float | None, str | None]] = []
    big = _big_slide(args.big, args.make_big)
    if big is not None:
        cases.append(("big40x_p512", big, {}, None, "synthetic_big_40x_seed0__p512_level0_tcga"))
        cases.append(
            (
                "big40x_p256",
                big,
                {"target_mpp": 0.25},
                None,
                "synthetic_big_40x_seed0__p256_level0_tcga",
            )
        )
    wsi = SHARED / "data" / "wsi"
    if wsi.is_dir():
        cases.append(
            (
                "cmu",
                wsi / "CMU-1-Small-Region.svs",
                CLAM_AT1,
                None,
                "CMU-1-Small-Region__p256_tcga_at1",
            )
        )
        cases.append(
            (
                "tcga_cr",
                wsi / "TCGA-CR-7395-01A-01-TS1.svs",
                {},
                0.5,
                "TCGA-CR-7395-01A-01-TS1__p256_tcga",
            )
        )
    results: dict[str, dict] = {}
    for name, path, options, mpp, ref in cases:
        case = bench_case(name, path, options, mpp, ref, args.repeats)
        for key, row in case.items():
            extra = ""
            if "iou_raw" in row:
                extra = (
                    f", CLAM {row['clam_n_tiles']} tiles, IoU raw {row['iou_raw']:.3f} "
                    f"tissue {row['iou_tissue']:.3f}"
                )
            clam = f" (CLAM {row['clam_seconds']} s)" if row.get("clam_seconds") else ""
            if row.get("clam_segmentation_s"):
                clam = f" (segmentation {row['segmentation_s']:.3f} s, CLAM's {row['clam_segmentation_s']} s)"
            print(
                f"{key:24s} {row['seconds']:.3f} s{clam}, {row['tiles_per_s']:.0f} tiles/s, "
                f"{row['n_tiles']} tiles{extra}",
                flush=True,
            )
        results.update(case)
    print(json.dumps({"bench": "tiling", "cases": results}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

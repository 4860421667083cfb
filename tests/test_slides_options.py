"""Tiling options: presets, overrides, validation errors that name the key, hashing."""

from __future__ import annotations

import pytest

from wsirisk.slides.options import (
    CLAM_REF_PATCH_AREA_LEVEL0,
    OptionsError,
    params_hash,
    parse_options,
    parse_options_json,
)


def test_defaults_are_the_tcga_preset_mirroring_clam() -> None:
    options = parse_options({})
    seg = options.segmentation
    assert (options.preset, options.target_mpp, options.tile_size_px) == ("tcga", 0.5, 256)
    assert (seg.sthresh, seg.mthresh, seg.close_px, seg.use_otsu, seg.max_n_holes) == (
        8,
        7,
        4,
        False,
        8,
    )
    assert seg.min_tissue_area_level0 == 16 * CLAM_REF_PATCH_AREA_LEVEL0
    assert seg.min_hole_area_level0 == 4 * CLAM_REF_PATCH_AREA_LEVEL0


def test_biopsy_preset_and_overrides_merge() -> None:
    options = parse_options(
        {"preset": "biopsy", "target_mpp": 0.25, "segmentation": {"sthresh": 20}}
    )
    assert options.segmentation.sthresh == 20
    assert options.segmentation.mthresh == 11  # from the biopsy preset
    assert options.target_mpp == 0.25


def test_config_section_as_written_in_config_yaml_parses() -> None:
    text = (
        '{"preset": "tcga", "target_mpp": 0.5, "tile_size_px": 256, "overlap_px": 0,'
        ' "min_tissue_fraction": 0.5, "segmentation": {}}'
    )
    assert parse_options_json(text).min_tissue_fraction == 0.5


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"tile_size": 256}, "slides.tile_size"),
        ({"preset": "nope"}, "slides.preset"),
        ({"target_mpp": "0.5"}, "slides.target_mpp"),
        ({"target_mpp": -1}, "slides.target_mpp"),
        ({"overlap_px": 256}, "slides.overlap_px"),
        ({"min_tissue_fraction": 0}, "slides.min_tissue_fraction"),
        ({"segmentation": {"mthresh": 4}}, "slides.segmentation.mthresh"),
        ({"segmentation": {"use_otsu": 1}}, "slides.segmentation.use_otsu"),
        ({"segmentation": {"a_t": 16}}, "slides.segmentation.a_t"),
        ({"segmentation": []}, "slides.segmentation"),
    ],
)
def test_invalid_options_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(OptionsError, match=key.replace(".", r"\.")):
        parse_options(raw)


def test_bad_json_names_the_flag() -> None:
    with pytest.raises(OptionsError, match="--options"):
        parse_options_json("{preset: tcga")


def test_params_hash_tracks_parameters() -> None:
    base = parse_options({})
    assert params_hash(base, None) == params_hash(parse_options({}), None)
    assert params_hash(base, None) != params_hash(parse_options({"tile_size_px": 224}), None)
    assert params_hash(base, None) != params_hash(base, 0.25)

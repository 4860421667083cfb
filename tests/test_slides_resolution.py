"""Resolution lookup order, plausibility checks, and the no-MPP error message."""

from __future__ import annotations

import pytest

from wsirisk.slides.resolution import NoMppError, find_mpp


def test_openslide_mpp_first() -> None:
    found = find_mpp({"openslide.mpp-x": "0.2527", "aperio.MPP": "0.5"})
    assert (found.mpp, found.source) == (0.2527, "openslide.mpp-x")


def test_vendor_keys() -> None:
    assert find_mpp({"aperio.MPP": "0.4990"}).source == "aperio.MPP"
    mirax = find_mpp({"mirax.LAYER_0_LEVEL_0_SECTION.MICROMETER_PER_PIXEL_X": "0.243"})
    assert mirax.mpp == pytest.approx(0.243)
    philips = find_mpp({"philips.DICOM_PIXEL_SPACING": '"0.000250" "0.000250"'})
    assert philips.mpp == pytest.approx(0.25)


def test_tiff_resolution_units() -> None:
    cm = find_mpp({"tiff.XResolution": "40000", "tiff.ResolutionUnit": "centimeter"})
    assert (cm.mpp, cm.source) == (pytest.approx(0.25), "tiff.XResolution")
    inch = find_mpp({"tiff.XResolution": "101600", "tiff.ResolutionUnit": "inch"})
    assert inch.mpp == pytest.approx(0.25)


def test_objective_power_is_the_last_resort() -> None:
    found = find_mpp({"openslide.objective-power": "40"})
    assert (found.mpp, found.source) == (pytest.approx(0.25), "openslide.objective-power")
    assert find_mpp({"hamamatsu.SourceLens": "20"}).mpp == pytest.approx(0.5)


def test_72_dpi_defaults_are_rejected_and_override_wins() -> None:
    props = {
        "openslide.mpp-x": "352.77777983377013",
        "tiff.XResolution": "28.346",
        "tiff.ResolutionUnit": "centimeter",
    }
    with pytest.raises(NoMppError, match="implausible"):
        find_mpp(props)
    found = find_mpp(props, 0.5)
    assert (found.mpp, found.source) == (0.5, "override")


def test_no_mpp_message_lists_keys_and_fix() -> None:
    with pytest.raises(NoMppError) as info:
        find_mpp({"tiff.ResolutionUnit": "inch"}, name="x.svs")
    message = str(info.value)
    for key in ("x.svs", "openslide.mpp-x", "aperio.MPP", "tiff.XResolution", "objective-power"):
        assert key in message
    assert "mpp_override" in message and "--mpp-override" in message

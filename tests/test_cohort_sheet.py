"""`wsirisk sheet`: every bad row becomes a QC row naming the sheet and line; the rest go on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from wsirisk.cli import main
from wsirisk.cohort.sheet import validate_sheet
from wsirisk.demo import make_demo
from wsirisk.slides.tile import tile_slide

# small demo slides: tissue islands of a few tiles
DEMO_SLIDES = {"segmentation": {"min_tissue_area_level0": 16384, "min_hole_area_level0": 16384}}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    names = ["a.svs", "b.svs", "c.svs", "d.svs"]
    out = {}
    for name in names:
        out[name] = tmp_path / name
        out[name].write_bytes(b"x")
    return out


def test_every_bad_row_is_named_with_its_line(tmp_path: Path, files: dict[str, Path]) -> None:
    f = {k: str(v) for k, v in files.items()}
    sheet = _write(
        tmp_path / "sheet.tsv",
        [
            "slide_id\tpatient_id\tpath\tmpp_override",
            f"S-3\tP-2\t{f['c.svs']}\t",  # 2: kept
            f"../x\tP-1\t{f['a.svs']}\t",  # 3: unsafe slide id
            f"S-1\tP-1\t{f['a.svs']}\t0.25",  # 4: kept, mpp override
            f"S-1\tP-9\t{f['b.svs']}\t",  # 5: duplicate of line 4
            f"S-2\tP-1\t{tmp_path / 'gone.svs'}\t",  # 6: missing file
            "",  # 7: blank, skipped
            f"S-4\tP-3\t{f['d.svs']}",  # 8: 3 fields for 4 columns
            f"S-5\t\t{f['d.svs']}\t",  # 9: empty patient_id
            f"S-6\tP-3\t{f['d.svs']}\tfast",  # 10: bad mpp
            f"S-7\tP/3\t{f['d.svs']}\t",  # 11: unsafe patient id
            f"S-8\tP-3\t{tmp_path}\t",  # 12: a directory, not a file
        ],
    )
    out, qc = tmp_path / "out" / "slides.tsv", tmp_path / "qc" / "sheet.tsv"
    argv = ["sheet", "--sheet", str(sheet), "--out", str(out), "--qc", str(qc)]
    assert main([*argv, "--slides-per-job", "1"]) == 0
    kept = _read(out)
    assert [r["slide_id"] for r in kept] == ["S-1", "S-3"]  # slide_id order
    assert kept[0] == {
        "slide_id": "S-1",
        "patient_id": "P-1",
        "path": f["a.svs"],
        "mpp_override": "0.25",
        "sheet": str(sheet),
        "line": "4",
        "batch": "0",
    }
    assert kept[1]["line"] == "2" and kept[1]["batch"] == "1"
    rejected = {int(r["line"]): r for r in _read(qc)}
    codes = {line: r["reason_code"] for line, r in rejected.items()}
    assert codes == {
        3: "unsafe_id",
        5: "duplicate_id",
        6: "missing_file",
        8: "bad_row",
        9: "bad_row",
        10: "bad_row",
        11: "unsafe_id",
        12: "missing_file",
    }
    for line, row in rejected.items():
        assert row["sheet"] == str(sheet)
        assert row["reason"].startswith(f"{sheet} line {line}: ")
    assert "already on line 4" in rejected[5]["reason"]
    assert "3 tab-separated field(s), the header has 4" in rejected[8]["reason"]
    assert "empty patient_id" in rejected[9]["reason"]
    assert "'fast'" in rejected[10]["reason"]
    assert rejected[3]["slide_id"] == "../x"


def test_batches_of_k_in_slide_order(tmp_path: Path, files: dict[str, Path]) -> None:
    lines = ["slide_id\tpatient_id\tpath"]
    lines += [f"S-{i}\tP-{i}\t{files['a.svs']}" for i in (4, 0, 3, 1, 2)]
    result = validate_sheet(_write(tmp_path / "s.tsv", lines), slides_per_job=2)
    assert [(r["slide_id"], r["batch"]) for r in result.kept] == [
        ("S-0", "0"),
        ("S-1", "0"),
        ("S-2", "1"),
        ("S-3", "1"),
        ("S-4", "2"),
    ]
    assert all(r["mpp_override"] == "" for r in result.kept)


def test_missing_columns_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = _write(tmp_path / "s.tsv", ["slide\tpatient_id\tfile", "a\tb\tc"])
    argv = ["sheet", "--sheet", str(sheet), "--out", str(tmp_path / "o"), "--qc", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert str(sheet) in err and "['slide_id', 'path']" in err
    assert not (tmp_path / "o").exists()


def test_relative_paths_stay_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    sheet = _write(tmp_path / "s.tsv", ["slide_id\tpatient_id\tpath", "S\tP\ta.svs"])
    assert validate_sheet(sheet).kept[0]["path"] == "a.svs"
    monkeypatch.chdir(tmp_path.parent)
    assert validate_sheet(sheet).rejected[0]["reason_code"] == "missing_file"


def test_no_usable_row_still_writes_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = _write(tmp_path / "s.tsv", ["slide_id\tpatient_id\tpath", "S\tP\tnowhere.svs"])
    out, qc = tmp_path / "o.tsv", tmp_path / "q.tsv"
    assert main(["sheet", "--sheet", str(sheet), "--out", str(out), "--qc", str(qc)]) == 0
    assert out.read_text().splitlines() == [
        "slide_id\tpatient_id\tpath\tmpp_override\tsheet\tline\tbatch"
    ]
    assert len(_read(qc)) == 1
    assert "no usable slide row" in capsys.readouterr().err


def test_bad_rows_reach_qc_slides_and_the_rest_are_tiled(tmp_path: Path) -> None:
    """The issue's scenario: one '../' id, one missing file, one truncated slide."""
    data = tmp_path / "data"
    make_demo(data, n_patients=2, seed=1, frac_40x=0.0, tiles_per_slide=8)
    good = sorted((data / "slides").glob("*.tiff"))
    truncated = tmp_path / "trunc.tiff"
    truncated.write_bytes(good[1].read_bytes()[: good[1].stat().st_size * 6 // 10])
    sheet = _write(
        tmp_path / "sheet.tsv",
        [
            "slide_id\tpatient_id\tpath",
            f"GOOD-1\tP-1\t{good[0]}",
            f"../evil\tP-2\t{good[1]}",
            f"GONE-1\tP-3\t{tmp_path / 'gone.tiff'}",
            f"TRUNC-1\tP-4\t{truncated}",
        ],
    )
    out, qc = tmp_path / "cohort" / "slides.tsv", tmp_path / "qc" / "sheet.tsv"
    assert main(["sheet", "--sheet", str(sheet), "--out", str(out), "--qc", str(qc)]) == 0
    stores = []
    for row in _read(out):
        store = tmp_path / "slides" / f"{row['slide_id']}.zarr"
        tile_slide(
            row["path"],
            store,
            slide_id=row["slide_id"],
            patient_id=row["patient_id"],
            options=DEMO_SLIDES,
        )
        stores.append(str(store))
    qc_slides = tmp_path / "qc" / "slides.tsv"
    assert main(["qc-slides", *stores, "--sheet-qc", str(qc), "--out", str(qc_slides)]) == 0
    rows = {r["slide_id"]: r for r in _read(qc_slides)}
    assert rows["GOOD-1"]["status"] == "ok" and int(rows["GOOD-1"]["n_tiles"]) > 0
    assert (rows["TRUNC-1"]["status"], rows["TRUNC-1"]["reason_code"]) == ("failed", "corrupt")
    assert rows["../evil"]["status"] == "rejected"
    assert rows["../evil"]["reason_code"] == "unsafe_id"
    assert rows["../evil"]["reason"].startswith(f"{sheet} line 3: unsafe slide_id")
    assert rows["GONE-1"]["reason_code"] == "missing_file"
    assert rows["GONE-1"]["reason"].startswith(f"{sheet} line 4: ")
    assert rows["GONE-1"]["patient_id"] == "P-3"


def test_qc_slides_with_only_rejected_rows(tmp_path: Path) -> None:
    qc = _write(
        tmp_path / "sheet_qc.tsv",
        [
            "sheet\tline\tslide_id\tpatient_id\tpath\treason_code\treason",
            "s\t2\tX\tP\tp\tbad_row\tr",
        ],
    )
    out = tmp_path / "slides.tsv"
    assert main(["qc-slides", "--sheet-qc", str(qc), "--out", str(out)]) == 0
    assert [r["status"] for r in _read(out)] == ["rejected"]

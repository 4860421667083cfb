"""`wsirisk extra`: per-patient vector tables -> extra.zarr; fold scaling; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_training import write_cohort

from wsirisk.cli import main
from wsirisk.omics.build import build_omics
from wsirisk.omics.extra import load_extra
from wsirisk.omics.load import load_omics
from wsirisk.training.data import prepare_fold


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_extra_store_roundtrip_and_qc(tmp_path: Path) -> None:
    rad = _write(tmp_path / "rad.csv", "case_id,a,b\nP1,1.0,2.0\nP2,,\nP3,3.5,\n")
    clin = _write(tmp_path / "clin.tsv", "case_id\tage\nP1\t60\nP4\t71\n")
    out, qc = tmp_path / "extra.zarr", tmp_path / "qc" / "extra.tsv"
    args = ["extra", "--table", f"rad={rad}", "--table", f"clin={clin}", "--out", str(out)]
    assert main([*args, "--qc", str(qc)]) == 0
    tables = load_extra(out)
    assert list(tables) == ["rad", "clin"]
    assert tables["rad"].patients == ["P1", "P3"] and tables["rad"].columns == ["a", "b"]
    np.testing.assert_array_equal(tables["rad"].values, [[1.0, 2.0], [3.5, np.nan]])
    assert tables["clin"].values.dtype == np.float32 and tables["clin"].patients == ["P1", "P4"]
    lines = qc.read_text().splitlines()
    assert lines[1].startswith("rad\tP2\tskipped") and len(lines) == 2


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("case_id,a\nP1,1\nP1,2\n", "'P1' appears more than once"),
        ("case_id,a\nP1,1\nP2,abc\n", r"column 'a' row 3 is not numeric"),
        ("id,a\nP1,1\n", "no 'case_id' column"),
        ("case_id\nP1\n", "no feature column"),
    ],
)
def test_bad_tables_are_named(tmp_path: Path, text: str, match: str) -> None:
    table = _write(tmp_path / "t.csv", text)
    with pytest.raises(ValueError, match=match) as err:
        main(["extra", "--table", f"rad={table}", "--out", str(tmp_path / "x.zarr")])
    assert str(table) in str(err.value)
    assert not (tmp_path / "x.zarr").exists()  # nothing half-written


def test_bad_names_and_arguments(tmp_path: Path) -> None:
    table = _write(tmp_path / "t.csv", "case_id,a\nP1,1\n")
    for bad in (f"genomics={table}", f"1rad={table}", str(table)):
        with pytest.raises(ValueError, match="extra modality name|NAME=PATH"):
            main(["extra", "--table", bad, "--out", str(tmp_path / "x.zarr")])
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        main(
            [
                "extra",
                "--table",
                f"rad={tmp_path / 'missing.csv'}",
                "--out",
                str(tmp_path / "x.zarr"),
            ]
        )


def test_fold_scaling_uses_training_patients_only(tmp_path: Path) -> None:
    csv, sig = write_cohort(tmp_path)
    build_omics(csv, sig, tmp_path / "omics.zarr", tmp_path / "qc.tsv")
    omics = load_omics(tmp_path / "omics.zarr")
    train, val = omics.patients[:30], omics.patients[30:]
    values = np.arange(38, dtype=float)  # the last two patients have no row
    frame = pd.DataFrame({"case_id": omics.patients[:38], "v": values, "w": 1.0})
    frame.loc[2, "v"] = np.nan
    frame.to_csv(tmp_path / "rad.csv", index=False)
    main(["extra", "--table", f"rad={tmp_path / 'rad.csv'}", "--out", str(tmp_path / "x.zarr")])
    extra = load_extra(tmp_path / "x.zarr")
    data = prepare_fold(omics, {"train": train, "val": val}, extra=extra)
    train_v = np.delete(values[:30], 2)
    mean, std = train_v.mean(), train_v.std()
    assert data.extra_dims == {"rad": 2}
    assert data.extra_scaler.mean["rad"][0] == pytest.approx(mean, rel=1e-6)
    by_id = {s.patient: s for s in data.train + data.val}
    assert by_id[val[0]].extra["rad"][0] == pytest.approx((30 - mean) / std, rel=1e-5)
    assert by_id[train[2]].extra["rad"][0] == pytest.approx(0.0, abs=1e-6)  # imputed mean
    assert by_id[train[0]].extra["rad"][1] == 0.0  # constant column: centred, std 1
    assert set(data.missing["no_rad"]) == set(omics.patients[38:])
    assert all("rad" not in by_id[p].extra for p in omics.patients[38:])
    # changing a validation patient's value does not move the scaler
    frame.loc[35, "v"] = 1e6
    frame.to_csv(tmp_path / "rad.csv", index=False)
    main(["extra", "--table", f"rad={tmp_path / 'rad.csv'}", "--out", str(tmp_path / "x.zarr")])
    again = prepare_fold(omics, {"train": train, "val": val}, extra=load_extra(tmp_path / "x.zarr"))
    assert again.extra_scaler.mean["rad"][0] == data.extra_scaler.mean["rad"][0]

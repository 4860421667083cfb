"""Clinical tables of every era -> survival_months, censorship (1 = censored), one row per case."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsirisk.gdc import clinical
from wsirisk.gdc.clinical import DAYS_PER_MONTH, detect_format, read_clinical


def _row(table, case: str) -> tuple[float, int]:
    rec = table.set_index("case_id").loc[case]
    return round(rec["survival_months"] * DAYS_PER_MONTH, 6), int(rec["censorship"])


@pytest.fixture(scope="module")
def clin(shared_dir: Path) -> Path:
    return shared_dir / "gdc" / "clinical"


def test_portal_2020(clin: Path) -> None:
    path = clin / "clinical_2020_format_LUSC.tsv"
    assert detect_format(path) == "portal"
    table = read_clinical(path)
    assert list(table.columns) == ["case_id", "survival_months", "censorship"]
    assert len(table) == 132 and table.case_id.is_unique  # 135 cases, 270 rows
    assert int((table.censorship == 0).sum()) == 62
    assert table.attrs["skipped"] == {
        "TCGA-63-5131": "dead without days_to_death",
        "TCGA-63-A5M9": "alive without a follow-up day",
        "TCGA-77-A5GB": "dead without days_to_death",
    }
    assert _row(table, "TCGA-43-5670") == (849, 1)
    assert _row(table, "TCGA-18-3410") == (146, 0)
    assert table.set_index("case_id").loc["TCGA-43-5670", "survival_months"] == pytest.approx(
        849 / 30.4375
    )


def test_portal_2022_quoted_dashes(clin: Path, tmp_path: Path) -> None:
    text = (clin / "clinical_2020_format_LUSC.tsv").read_text()
    quoted = "\n".join(
        "\t".join("'--" if cell == "--" else cell for cell in line.split("\t"))
        for line in text.splitlines()
    )
    path = tmp_path / "clinical.tsv"
    path.write_text(quoted + "\n")
    assert "'--" in path.read_text()
    assert read_clinical(path).equals(read_clinical(clin / "clinical_2020_format_LUSC.tsv"))


def test_portal_2024_prefixed_several_rows(clin: Path, tmp_path: Path) -> None:
    path = clin / "clinical_portalv2_format_THCA.head60.tsv"
    assert detect_format(path) == "portal_prefixed"
    table = read_clinical(path)
    assert len(table) == 14 and table.attrs["skipped"] == {}  # 59 rows
    assert _row(table, "TCGA-EL-A3CW") == (938, 0)
    assert _row(table, "TCGA-EL-A3N3") == (5423, 1)  # '-- on the diagnosis2 rows
    follow = clin / "follow_up_portalv2_format_THCA.head40.tsv"
    assert detect_format(follow) == "follow_up"
    assert read_clinical(path, follow_up=follow).equals(table)  # no later contact there
    later = tmp_path / "follow_up.tsv"
    later.write_text(follow.read_text().replace("\t5423\t", "\t6000\t"))
    assert _row(read_clinical(path, follow_up=later), "TCGA-EL-A3N3") == (6000, 1)
    with pytest.raises(ValueError, match="no vital status"):
        clinical.read_clinical_files([follow])


def test_biotab(clin: Path) -> None:
    path = clin / "biotab_clinical_patient_brca.head23.txt"
    assert detect_format(path) == "biotab"
    table = read_clinical(path)
    assert len(table) == 20  # 22 rows minus the alias and CDE_ID rows
    assert int((table.censorship == 0).sum()) == 1
    assert _row(table, "TCGA-A1-A0SK") == (967, 0)
    assert _row(table, "TCGA-3C-AAAU") == (3767, 1)


def test_cdr_endpoints(clin: Path) -> None:
    path = clin / "TCGA-CDR-SupplementalTableS1.tsv"
    assert detect_format(path) == "cdr"
    table = read_clinical(path)
    assert len(table) == 11094 and int((table.censorship == 0).sum()) == 3592
    assert len(table.attrs["skipped"]) == 66
    assert _row(table, "TCGA-OR-A5J1") == (1355, 0)
    assert _row(table, "TCGA-OR-A5J3") == (2091, 1)
    assert len(read_clinical(path, endpoint="DSS")) == 10540
    pfi = read_clinical(path, endpoint="pfi")
    assert len(pfi) == 10907 and _row(pfi, "TCGA-OR-A5J1") == (754, 0)
    blca = read_clinical(path, project="TCGA-BLCA")
    assert len(blca) == 411 and blca.case_id.str.startswith("TCGA-").all()


def test_endpoint_and_input_errors(clin: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        read_clinical(clin / "TCGA-CDR-SupplementalTableS1.tsv", endpoint="EFS")
    with pytest.raises(ValueError, match="DSS needs the TCGA-CDR"):
        read_clinical(clin / "biotab_clinical_patient_brca.head23.txt", endpoint="DSS")
    bad = tmp_path / "clinical.tsv"
    bad.write_text(
        "case_id\tsubmitter_id\tvital_status\tdays_to_death\tdays_to_last_follow_up\n"
        "u1\tTCGA-AA-0001\tDead\tsoon\t--\n"
    )
    with pytest.raises(ValueError, match=r"clinical.tsv: column days_to_death: non-numeric"):
        read_clinical(bad)
    other = tmp_path / "other.tsv"
    other.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match=r"other.tsv: not a recognised clinical table"):
        read_clinical(other)

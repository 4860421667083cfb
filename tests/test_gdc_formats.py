"""STAR counts, copy number and MAF parsers on the real GDC format examples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsirisk.gdc import cnv, maf, rnaseq

GENE_LEVEL_HEADER = (
    "gene_id\tgene_name\tchromosome\tstart\tend\tcopy_number\tmin_copy_number\tmax_copy_number\n"
)


def gene_level_file(path: Path) -> Path:
    """A GDC ASCAT gene-level file (genes placed around the ASCAT3 example's segments)."""
    rows = [
        ("ENSG00000223972.5", "DDX11L1", "chr1", 11869, 14409, "", "", ""),
        ("ENSG00000186092.6", "OR4F5", "chr1", 65419, 71585, 4, 4, 4),
        ("ENSG00000000001.1", "GAPGENE", "chr1", 3754500, 3760000, "", "", ""),
        ("ENSG00000000002.1", "SPAN34", "chr1", 3700000, 3800000, 4, 3, 4),
        ("ENSG00000000003.1", "TIE35", "chr1", 86902000, 86902594, 3, 3, 5),
        ("ENSG00000000004.1", "CHR2GENE", "chr2", 1000, 2000, 2, 2, 2),
        ("ENSG00000000005.1", "", "chr1", 100000000, 100001000, 0, 0, 0),
    ]
    path.write_text(GENE_LEVEL_HEADER + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_star_counts_excerpt(shared_dir: Path) -> None:
    path = shared_dir / "gdc" / "rnaseq" / "star_counts_excerpt.tsv"
    assert rnaseq.is_star_counts(path)
    table = rnaseq.read_star_counts(path)
    assert list(table.ensembl_id) == ["ENSG00000000003", "ENSG00000000005", "ENSG00000000419"]
    values = rnaseq.star_log2_tpm(path)
    assert len(values) == 3  # the four N_* rows are not genes
    assert values["TSPAN6"] == pytest.approx(math.log2(44.6685 + 1))
    assert values["TNMD"] == 0.0


def test_star_counts_fixture_gz(shared_dir: Path) -> None:
    path = shared_dir / "gdc" / "rnaseq" / "star_counts_fixture.augmented_star_gene_counts.tsv.gz"
    assert rnaseq.is_star_counts(path)
    assert len(rnaseq.read_star_counts(path)) == 96
    values = rnaseq.star_log2_tpm(path)
    assert len(values) == 95  # CD99 and its _PAR_Y copy share one symbol
    assert values["TSPAN6"] == pytest.approx(math.log2(92548.07751878405 + 1))
    assert rnaseq.strip_version("ENSG00000002586.20_PAR_Y") == "ENSG00000002586"
    matrix = rnaseq.star_matrix({"TCGA-AA-0001-01A": path, "TCGA-AA-0002-01A": path})
    assert matrix.shape == (95, 2) and matrix.index.is_monotonic_increasing


def test_star_counts_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.tsv"
    bad.write_text("gene_id\tgene_name\tunstranded\nENSG1.1\tA\t3\n")
    with pytest.raises(ValueError, match=r"x.tsv.*tpm_unstranded"):
        rnaseq.read_star_counts(bad)
    bad.write_text("gene_id\tgene_name\ttpm_unstranded\nENSG1.1\tA\tlots\n")
    with pytest.raises(ValueError, match=r"x.tsv: column tpm_unstranded: non-numeric"):
        rnaseq.read_star_counts(bad)


def test_segment_files(shared_dir: Path) -> None:
    folder = shared_dir / "gdc" / "cnv"
    ascat = cnv.read_segments(next(folder.glob("README_excerpt*ascat3*")))
    assert ascat.attrs["kind"] == cnv.COPY_NUMBER and len(ascat) == 4
    assert set(ascat["sample"]) == {"0aeed974-9ad8-4208-9c09-43418386665f"}
    assert list(ascat["value"]) == [4, 3, 5, 4] and set(ascat["chromosome"]) == {"1"}
    docs = cnv.read_segments(folder / "gdcdocs_Copy_Number_Segment_example.txt")
    assert docs.attrs["kind"] == cnv.LOG2_RATIO and list(docs["value"])[0] == pytest.approx(0.1974)
    seg = cnv.read_segments(folder / "maftools_TCGA.AB.3009.hg19.seg.txt")
    assert len(seg) == 818 and set(seg["sample"]) == {"TCGA-AB-3009"}
    assert seg["chromosome"].nunique() >= 22
    for path in folder.iterdir():
        assert cnv.is_segments(path) and not cnv.is_gene_level(path)


def test_gene_level_and_segments_to_genes(shared_dir: Path, tmp_path: Path) -> None:
    path = gene_level_file(tmp_path / "x.gene_level_copy_number.v36.tsv")
    assert cnv.is_gene_level(path)
    values = cnv.gene_level_copy_number(path)
    assert len(values) == 7 and np.isnan(values["DDX11L1"]) and values["OR4F5"] == 4
    assert values["ENSG00000000005"] == 0  # no symbol: Ensembl ID
    genes = cnv.read_gene_level(path)
    seg = cnv.read_segments(next((shared_dir / "gdc" / "cnv").glob("README_excerpt*ascat3*")))
    by_gene = cnv.segments_to_genes(seg, genes)["0aeed974-9ad8-4208-9c09-43418386665f"]
    assert by_gene["OR4F5"] == 4  # inside the first segment
    assert np.isnan(by_gene["GAPGENE"])  # between two segments
    assert by_gene["SPAN34"] == 4  # 54464 bp of CN 4 beat 39967 bp of CN 3
    assert by_gene["TIE35"] == 3  # 43 bp each of CN 3 and 5: tie -> smaller
    assert np.isnan(by_gene["CHR2GENE"]) and np.isnan(by_gene["DDX11L1"])
    assert by_gene["ENSG00000000005"] == 4


def test_discretise() -> None:
    cn = pd.Series([0, 1, 2, 3, 4, 5, 9, np.nan])
    assert cnv.discretise(cn, cnv.COPY_NUMBER).tolist()[:7] == [-2, -1, 0, 1, 1, 2, 2]
    lr = pd.Series([-1.5, -1.0, -0.5, -0.3, 0.0, 0.3, 0.5, 1.0, 1.2])
    assert cnv.discretise(lr, cnv.LOG2_RATIO).tolist() == [-2, -1, -1, 0, 0, 0, 1, 1, 2]
    assert np.isnan(cnv.discretise(cn, cnv.COPY_NUMBER).iloc[-1])
    with pytest.raises(ValueError, match="unknown copy number kind"):
        cnv.discretise(cn, "gistic")


def test_masked_mafs(shared_dir: Path) -> None:
    folder = shared_dir / "gdc" / "maf"
    small = maf.maf_mutations(folder.glob("NGTA_1feaf21d*.maf"))
    assert list(small.index) == ["TCGA-DJ-A2Q6"]
    assert sorted(small.columns) == ["BRAF", "CYP2C9", "OR4D5", "ST18", "ZNF804A"]
    assert small.to_numpy().sum() == 5
    big = maf.maf_mutations(folder.glob("NGTA_c2e3ad0c*.maf"))
    assert list(big.index) == ["TCGA-EL-A3CT"] and big.shape[1] == 54 and big.to_numpy().all()
    assert "NOL4" not in big and "CBR3" not in big  # silent / splice-region only
    chosen = maf.maf_mutations(folder.glob("NGTA_c2e3ad0c*.maf"), genes=["NOL4", "TP53X"])
    assert chosen.to_dict("list") == {"NOL4": [0], "TP53X": [0]}
    both = maf.maf_mutations(sorted(folder.glob("NGTA_*.maf")))
    assert both.shape == (2, 58)  # both THCA cases carry a BRAF missense mutation
    assert both["BRAF"].tolist() == [1, 1] and both["CYP2C9"].tolist() == [1, 0]


def test_legacy_maf_gz(shared_dir: Path) -> None:
    laml = maf.maf_mutations([shared_dir / "gdc" / "maf" / "legacy_tcga_laml_hg19.maf.gz"])
    assert laml.shape == (193, 1241) and int(laml.to_numpy().sum()) == 1695
    assert laml.loc["TCGA-AB-2988", "ABCA10"] == 1
    assert laml.dtypes.unique().tolist() == [np.dtype("int8")]


def test_maf_sample_types_and_errors(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "Hugo_Symbol": ["TP53", "KRAS", "TTN"],
            "Variant_Classification": ["Missense_Mutation", "Nonsense_Mutation", "Silent"],
            "Tumor_Sample_Barcode": [
                "TCGA-AA-0001-01A-11D-A18F-08",
                "TCGA-AA-0002-11A",
                "TCGA-AA-0003-01A",
            ],
        }
    )
    out = maf.mutation_matrix(table)
    assert list(out.index) == ["TCGA-AA-0001", "TCGA-AA-0003"] and list(out.columns) == ["TP53"]
    assert out.loc["TCGA-AA-0003"].sum() == 0  # sequenced, only a silent change
    with_normals = maf.mutation_matrix(table, sample_types=range(1, 20))
    assert with_normals.loc["TCGA-AA-0002", "KRAS"] == 1
    bad = tmp_path / "bad.maf"
    bad.write_text("#version 2.4\nHugo_Symbol\tTumor_Sample_Barcode\nTP53\tTCGA-AA-0001-01A\n")
    with pytest.raises(ValueError, match=r"bad.maf.*Variant_Classification"):
        maf.read_maf(bad)

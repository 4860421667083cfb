"""A tiny TCGA-BLCA project for the fake GDC server, generated at test time.

Eleven cases with the GDC's real file layouts: small pyramidal JPEG slides (Aperio-style
description with the um/px, named ``<slide barcode>.<uuid>.svs``), STAR counts, ASCAT3 (and
one ASCAT2) gene-level copy number, aliquot MAFs, BCR Biotab clinical files and the TCGA-CDR
table as xlsx.  Roles (``CASES``):

    A001-A005  complete (A002: two DX slides, a second tumour sample 01B and a normal 11A)
    A006       complete, but absent from the CDR: label from the Biotab clinical files
    A007       its slide always fails md5 (corrupted on every request): no slide
    A008       slides only (no omics file)
    A009       omics only (no slide)
    A010       STAR file that is not a STAR table (unreadable) -> RNA missing
    A011       slide + STAR, in neither the CDR nor the clinical files -> no label
plus a STAR file listed for two cases (A001 and A003) and a normal-only STAR file.

``expected_features()`` lists the genes per modality the assembly must keep (defaults:
min_mutation_frequency 0.02, min_cnv_frequency 0.1).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from fake_gdc import FakeFile

PROJECT = "TCGA-BLCA"
CDR_FILE_ID = "1b5f413e-a8d1-4d10-92eb-7c4ae739ed81"
CASES = [f"TCGA-ZZ-A{i:03d}" for i in range(1, 12)]
IN_CDR = [c for c in CASES if c not in {"TCGA-ZZ-A006", "TCGA-ZZ-A011"}]
IN_BIOTAB = [c for c in CASES if c != "TCGA-ZZ-A011"]
WITH_SLIDE = [c for c in CASES if c not in {"TCGA-ZZ-A009"}]
WITH_OMICS = [c for c in CASES if c not in {"TCGA-ZZ-A008"}]
# genes in the STAR and CNV files: signature genes plus three that are in no category
SIGNATURE_GENES = [
    "TP53", "PTEN", "CDKN2A", "KRAS", "MYC", "EGFR", "CDK4", "FGFR3", "ERBB2",
    "CD44", "FOXA1", "GATA3", "IL6", "TGFB1",
]  # fmt: skip
OTHER_GENES = ["TSPAN6", "KRT5", "ARID1A"]
# copy numbers: CDKN2A homozygously deleted in 3 cases, MYC and ERBB2 amplified in 2
DEEP = {"CDKN2A": (0, ["A001", "A003", "A005"]), "MYC": (6, ["A002", "A009"]),
        "ERBB2": (8, ["A004", "A010"])}  # fmt: skip
# non-silent calls (gene, class, cases); PIK3CA only Silent, ARID1A in no category
MUTATIONS = [
    ("TP53", "Missense_Mutation", ["A001", "A002", "A004", "A009"]),
    ("KRAS", "Missense_Mutation", ["A003", "A005"]),
    ("FGFR3", "Missense_Mutation", ["A002"]),
    ("KDM6A", "Frame_Shift_Del", ["A001", "A010"]),
    ("PIK3CA", "Silent", ["A003", "A004", "A005"]),
    ("ARID1A", "Nonsense_Mutation", ["A002", "A003"]),
    ("TP53", "3'UTR", ["A005"]),
]
DAYS = {c: 100 + 97 * i for i, c in enumerate(CASES)}  # survival days per case
DEAD = {c: i % 2 == 0 for i, c in enumerate(CASES)}


def expected_features() -> dict[str, list[str]]:
    """Genes per modality of the assembled table under the default thresholds."""
    return {
        "rnaseq": sorted(SIGNATURE_GENES),
        "cnv": sorted(DEEP),
        "mut": ["FGFR3", "KDM6A", "KRAS", "TP53"],
    }


@dataclass
class Project:
    """The files and which ones to break."""

    files: list[FakeFile] = field(default_factory=list)
    by_name: dict[str, FakeFile] = field(default_factory=dict)

    def add(self, name: str, data: bytes, file_id: str | None = None, **meta: object) -> FakeFile:
        file_id = file_id or str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        fake = FakeFile(file_id, name, data, dict(meta))
        self.files.append(fake)
        self.by_name[name] = fake
        return fake

    def named(self, prefix: str) -> FakeFile:
        """The one file whose name starts with ``prefix``."""
        [hit] = [f for n, f in self.by_name.items() if n.startswith(prefix)]
        return hit


def _case(case: str, samples: list[tuple[str, str]]) -> dict:
    return {
        "case_id": str(uuid.uuid5(uuid.NAMESPACE_URL, case)),
        "submitter_id": case,
        "project": {"project_id": PROJECT},
        "samples": [{"submitter_id": s, "sample_type": t} for s, t in samples],
    }


def _meta(data_type: str, entities: list[tuple[str, str]], **extra: object) -> dict:
    """/files fields of a file attached to (barcode, entity_type) entities."""
    cases: dict[str, list[tuple[str, str]]] = {}
    kind = {"01": "Primary Tumor", "10": "Blood Derived Normal", "11": "Solid Tissue Normal"}
    for barcode, _ in entities:
        samples = cases.setdefault(barcode[:12], [])
        if len(barcode) > 12:  # below the case: the sample it was taken from
            sample = barcode[:16]
            samples.append((sample, kind.get(sample[13:15], "Primary Tumor")))
    return {
        "data_type": data_type,
        "access": "open",
        "cases": [_case(c, s) for c, s in cases.items()],
        "associated_entities": [
            {
                "entity_submitter_id": barcode,
                "entity_type": etype,
                "case_id": str(uuid.uuid5(uuid.NAMESPACE_URL, barcode[:12])),
            }
            for barcode, etype in entities
        ],
        **extra,
    }


def _slide_bytes(seed: int, tiles: int = 8) -> bytes:
    import tempfile
    from pathlib import Path

    from wsirisk.demo.tissue import SYNTH_MPP, synth_slide
    from wsirisk.slides.pyramid import write_pyramid_tiff

    slide = synth_slide(np.random.default_rng(seed), tiles, 0.3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.svs"
        write_pyramid_tiff(path, slide.rgb, SYNTH_MPP, n_levels=2, level_factor=4)
        return path.read_bytes()


def _star(rng: np.random.Generator) -> bytes:
    lines = ["# gene-model: GENCODE v36"]
    lines.append(
        "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
        "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded"
    )
    for name in ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"):
        lines.append(f"{name}\t\t\t100\t50\t50\t\t\t")
    for i, gene in enumerate(SIGNATURE_GENES + OTHER_GENES):
        tpm = float(rng.lognormal(2.0, 1.0))
        lines.append(
            f"ENSG{i:011d}.1\t{gene}\tprotein_coding\t{int(tpm * 10)}\t0\t0\t{tpm:.4f}\t0\t0"
        )
    return ("\n".join(lines) + "\n").encode()


def _cnv(case: str, rng: np.random.Generator) -> bytes:
    lines = [
        "gene_id\tgene_name\tchromosome\tstart\tend\tcopy_number\tmin_copy_number\tmax_copy_number"
    ]
    for i, gene in enumerate(SIGNATURE_GENES + OTHER_GENES):
        value = int(rng.integers(1, 5))
        if gene in DEEP and case[-4:] in DEEP[gene][1]:
            value = DEEP[gene][0]
        lines.append(
            f"ENSG{i:011d}.1\t{gene}\tchr{i % 22 + 1}\t{1000 * i}\t{1000 * i + 500}\t{value}\t{value}\t{value}"
        )
    return ("\n".join(lines) + "\n").encode()


def _maf(tumour: str, normal: str) -> bytes:
    lines = ["#version gdc-1.0.0", "#annotation.spec gdc-2.0.0"]
    lines.append(
        "Hugo_Symbol\tEntrez_Gene_Id\tVariant_Classification\tTumor_Sample_Barcode\t"
        "Matched_Norm_Sample_Barcode"
    )
    lines.append(f"TTN\t7273\tIntron\t{tumour}\t{normal}")  # every MAF has some call
    for gene, kind, cases in MUTATIONS:
        if tumour[:12][-4:] in cases:
            lines.append(f"{gene}\t0\t{kind}\t{tumour}\t{normal}")
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


def cdr_xlsx(cases: list[str], other_types: int = 3) -> bytes:
    """A TCGA-CDR workbook (sheet TCGA-CDR, unnamed index column, the curated columns)."""
    rows = []
    for case in cases:
        rows.append(
            {
                "bcr_patient_barcode": case,
                "type": PROJECT.removeprefix("TCGA-"),
                "vital_status": "Dead" if DEAD[case] else "Alive",
                "OS": int(DEAD[case]),
                "OS.time": DAYS[case],
                "DSS": "#N/A",
                "DSS.time": "#N/A",
                "PFI": int(DEAD[case]),
                "PFI.time": DAYS[case] - 50,
            }
        )
    for i in range(other_types):  # patients of another project
        rows.append(
            {
                "bcr_patient_barcode": f"TCGA-YY-B{i:03d}",
                "type": "LUAD",
                "vital_status": "Alive",
                "OS": 0,
                "OS.time": 1000 + i,
                "DSS": 0,
                "DSS.time": 1000 + i,
                "PFI": 0,
                "PFI.time": 900,
            }
        )
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        pd.DataFrame(rows).to_excel(writer, sheet_name="TCGA-CDR")  # index -> unnamed column
        pd.DataFrame({"note": ["fixture"]}).to_excel(writer, sheet_name="Notes", index=False)
    return buffer.getvalue()


def _biotab(kind: str, cases: list[str]) -> bytes:
    if kind == "patient":
        header = [
            "bcr_patient_uuid",
            "bcr_patient_barcode",
            "vital_status",
            "last_contact_days_to",
            "death_days_to",
        ]
        alias = [
            "bcr_patient_uuid",
            "bcr_patient_barcode",
            "vital_status",
            "days_to_last_followup",
            "days_to_death",
        ]
        cde = ["CDE_ID:", "CDE_ID:2003301", "CDE_ID:5", "CDE_ID:3008273", "CDE_ID:3165475"]
        rows = [
            [str(uuid.uuid5(uuid.NAMESPACE_URL, c)), c, "Dead" if DEAD[c] else "Alive",
             "[Not Applicable]" if DEAD[c] else str(DAYS[c] - 100),
             str(DAYS[c]) if DEAD[c] else "[Not Applicable]"]
            for c in cases
        ]  # fmt: skip
    elif kind == "follow_up":  # a later contact of the living patients
        header = [
            "bcr_patient_uuid",
            "bcr_patient_barcode",
            "bcr_followup_barcode",
            "vital_status",
            "last_contact_days_to",
            "death_days_to",
        ]
        alias = header
        cde = ["CDE_ID:"] * len(header)
        rows = [
            [str(uuid.uuid5(uuid.NAMESPACE_URL, c)), c, f"{c}-F1", "Alive", str(DAYS[c]), "[Not Applicable]"]
            for c in cases
            if not DEAD[c]
        ]  # fmt: skip
    else:  # a drug table: no survival columns
        header = ["bcr_patient_uuid", "bcr_patient_barcode", "pharmaceutical_therapy_drug_name"]
        alias, cde = header, ["CDE_ID:"] * 3
        rows = [[str(uuid.uuid5(uuid.NAMESPACE_URL, c)), c, "Cisplatin"] for c in cases[:3]]
    lines = ["\t".join(header), "\t".join(alias), "\t".join(cde)] + ["\t".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def build_project(
    *, seed: int = 0, slide_tiles: int = 8, cdr_cases: list[str] | None = None
) -> Project:
    """Every file of the fixture project (see the module doc)."""
    rng = np.random.default_rng(seed)
    project = Project()
    for i, case in enumerate(WITH_SLIDE):
        for dx in ("DX1", "DX2") if case == "TCGA-ZZ-A002" else ("DX1",):
            barcode = f"{case}-01Z-00-{dx}"
            name = f"{barcode}.{uuid.uuid5(uuid.NAMESPACE_URL, barcode)}.svs"
            project.add(
                name,
                _slide_bytes(seed * 100 + i * 3 + int(dx[-1]), slide_tiles),
                **_meta("Slide Image", [(barcode, "slide")], data_category="Biospecimen",
                        data_format="SVS", experimental_strategy="Diagnostic Slide"),
            )  # fmt: skip
    rna = dict(data_category="Transcriptome Profiling", data_format="TSV",
               experimental_strategy="RNA-Seq", analysis={"workflow_type": "STAR - Counts"})  # fmt: skip
    star_samples = [(c, "01A") for c in WITH_OMICS] + [
        ("TCGA-ZZ-A002", "01B"),
        ("TCGA-ZZ-A002", "11A"),
    ]
    for case, sample in star_samples:
        aliquot = f"{case}-{sample}-11R-A00{len(sample)}-07"
        name = f"{uuid.uuid5(uuid.NAMESPACE_URL, aliquot)}.rna_seq.augmented_star_gene_counts.tsv"
        data = _star(rng) if case != "TCGA-ZZ-A010" else b"this is not a STAR counts table\n"
        project.add(
            name, data, **_meta("Gene Expression Quantification", [(aliquot, "aliquot")], **rna)
        )
    shared = [
        ("TCGA-ZZ-A001-01A-21R-A00X-07", "aliquot"),
        ("TCGA-ZZ-A003-01A-21R-A00X-07", "aliquot"),
    ]
    project.add("ffff0000-two-cases.rna_seq.augmented_star_gene_counts.tsv", _star(rng),
                **_meta("Gene Expression Quantification", shared, **rna))  # fmt: skip
    cnv_omics = [c for c in WITH_OMICS if c != "TCGA-ZZ-A011"]
    for source in ("ASCAT3", "ASCAT2"):
        for case in cnv_omics if source == "ASCAT3" else ["TCGA-ZZ-A003"]:
            pair = [(f"{case}-01A-11D-A00Y-01", "aliquot"), (f"{case}-10A-01D-A00Y-01", "aliquot")]
            name = f"{PROJECT}.{uuid.uuid5(uuid.NAMESPACE_URL, case + source)}.{source.lower()}.gene_level_copy_number.v36.tsv"
            project.add(
                name,
                _cnv(case, rng),
                **_meta("Gene Level Copy Number", pair, data_category="Copy Number Variation",
                        data_format="TSV", experimental_strategy="Genotyping Array",
                        analysis={"workflow_type": source}),
            )  # fmt: skip
    for case in cnv_omics:
        tumour, normal = f"{case}-01A-11D-A00Z-08", f"{case}-10A-01D-A00Z-08"
        name = f"{uuid.uuid5(uuid.NAMESPACE_URL, tumour)}.wxs.aliquot_ensemble_masked.maf.gz"
        project.add(
            name,
            _maf(tumour, normal),
            **_meta("Masked Somatic Mutation", [(tumour, "aliquot"), (normal, "aliquot")],
                    data_category="Simple Nucleotide Variation", data_format="MAF",
                    experimental_strategy="WXS",
                    analysis={"workflow_type": "Aliquot Ensemble Somatic Variant Merging and Masking"}),
        )  # fmt: skip
    clinical = dict(data_category="Clinical", data_format="BCR Biotab")
    for kind, name in (("patient", "nationwidechildrens.org_clinical_patient_blca.txt"),
                       ("follow_up", "nationwidechildrens.org_clinical_follow_up_v4.0_blca.txt"),
                       ("drug", "nationwidechildrens.org_clinical_drug_blca.txt")):  # fmt: skip
        project.add(
            name,
            _biotab(kind, IN_BIOTAB),
            **_meta("Clinical Supplement", [(c, "case") for c in IN_BIOTAB], **clinical),
        )
    cdr = cdr_xlsx(IN_CDR if cdr_cases is None else cdr_cases)
    project.add(
        "TCGA-CDR-SupplementalTableS1.xlsx",
        cdr,
        file_id=CDR_FILE_ID,  # the real CDR's GDC id: a config naming only the project finds it
        data_type="Clinical Supplement",
        data_category="Clinical",
        data_format="XLSX",
        access="open",
    )
    return project


def cdr_entry(project: Project) -> dict[str, object]:
    """The gdc.cdr config of the fixture's CDR file."""
    cdr = project.by_name["TCGA-CDR-SupplementalTableS1.xlsx"]
    return {
        "file_id": cdr.file_id,
        "file_name": cdr.file_name,
        "md5": hashlib.md5(cdr.data).hexdigest(),
        "size_bytes": len(cdr.data),
    }


def portal_sample_sheet(files: list[FakeFile]) -> str:
    """The GDC portal's sample sheet of some files (cells of several cases/samples joined)."""
    lines = [
        "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type"
    ]
    for f in files:
        cases = f.meta.get("cases") or []
        samples = [s for c in cases for s in c.get("samples") or []]
        lines.append(
            "\t".join(
                [
                    f.file_id,
                    f.file_name,
                    str(f.meta.get("data_category", "")),
                    str(f.meta.get("data_type", "")),
                    PROJECT,
                    ", ".join(c["submitter_id"] for c in cases for _ in c.get("samples") or [c]),
                    ", ".join(s["submitter_id"] for s in samples),
                    ", ".join(s["sample_type"] for s in samples),
                ]
            )
        )
    return "\n".join(lines) + "\n"

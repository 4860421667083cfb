"""The one place that knows every artifact layout: paths, zarr array names and attributes.

Stdlib only: the Snakefile imports this module without the rest of the package.

Directory tree for one cohort (``results_dir/<cohort>/``)::

    cohort/slides.tsv             the validated slide sheet (stage: sheet; a checkpoint)
    cohort/patients.tsv           one row per patient: slides, omics, label, status, reason
    cohort/summary.json           counts (both / slides only / omics only / dropped), checks
    qc/sheet.tsv                  sheet rows that were rejected (sheet, line, reason)
    slides/<slide_id>.zarr        tissue mask + tile coordinates + QC attributes (stage: tile)
    slides/<slide_id>.geojson     tissue polygons (QuPath FeatureCollection)
    slides/<slide_id>.png         QC thumbnail with contours and kept tiles
    qc/slides.tsv                 one row per slide: status, reason, n_tiles, mpp, ...
    features/<encoder>/<slide_id>.zarr   (N, D) float16 features + coords (stage: extract)
    features/<encoder>/batches/batch<k>.tsv   slides one extraction job wrote (stage: extract)
    omics.zarr                    six categories per patient + survival (stage: omics)
    qc/omics.tsv                  omics problems (dropped / omics-absent patients, imputed NaNs, ...)
    extra.zarr                    further per-patient modality vectors (stage: extra; optional)
    qc/extra.tsv                  extra-table rows skipped (no value)
    splits.zarr                   patient-level folds (stage: splits)
    train/<model>/fold<k>.zarr    out-of-fold risks, history, bins (stage: train)
    train/<model>/fold<k>.pt      checkpoint (loads with weights_only=True)
    report/<model>/index.html, report/<model>/summary.json, *.png   (stage: report, per model)
    report/index.html, report/models.json   cohort page: every model run so far (stage: cohort_page)
    gdc/omics_table.csv           raw-GDC cohorts only (stage: gdc_assemble): PORPOISE-layout table,
    gdc/labels.tsv, gdc/sample_sheet.tsv, gdc/samples.tsv, gdc/features.tsv, gdc/assembly.json
    qc/assembly.tsv               patients dropped or partial in the assembly (qc/omics.tsv columns)

Generated demo inputs live under ``data_dir/<cohort>/`` (stage: make-demo); GDC downloads under
``data_dir/<cohort>/gdc/<kind>/``: manifest.txt and file_map.tsv (stage: gdc_query),
files/<GDC file name> and download_log.tsv (stage: gdc_download).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# ---- zarr array names and attribute keys -------------------------------------------------
# slide store (results/<cohort>/slides/<slide>.zarr)
SLIDE_COORDS = "coords"  # int64 (N, 2): level-0 (x, y) of each tile's top-left corner
SLIDE_MASK = "tissue_mask"  # uint8 (H, W): tissue mask at attrs["mask_downsample"]
# features store (results/<cohort>/features/<encoder>/<slide>.zarr)
FEAT_FEATURES = "features"  # float16 (N, D)
FEAT_COORDS = "coords"  # int64 (N, 2), same order as features
# omics store (results/<cohort>/omics.zarr)
OMICS_GROUPS = "groups"  # group of arrays, one float32 (P, F_g) per category (key = slug)
OMICS_MONTHS = "survival_months"  # float32 (P,)
OMICS_CENSORSHIP = "censorship"  # int8 (P,), 1 = censored
# fold store (results/<cohort>/train/<model>/fold<k>.zarr)
FOLD_VAL_RISK = "val_risk"  # float32 (P_val,), order = attrs["val_patients"]

# Attribute keys shared by all stores
ATTR_STATUS = "status"  # "ok" | "skipped" | "failed"
ATTR_REASON = "reason"

CATEGORIES = (
    "Tumor Suppressor Genes",
    "Oncogenes",
    "Protein Kinases",
    "Cell Differentiation Markers",
    "Transcription Factors",
    "Cytokines and Growth Factors",
)

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_WILDCARD = re.compile(r"^\{[a-z_]+\}$")  # Snakemake placeholder such as "{slide}"


def check_id(sample_id: str, what: str = "id") -> str:
    """Return ``sample_id`` if it is safe as a file name, else raise ValueError naming it.

    A bare Snakemake wildcard (``"{slide}"``) passes so the Snakefile can build path patterns.
    """
    if isinstance(sample_id, str) and _WILDCARD.match(sample_id):
        return sample_id
    if not isinstance(sample_id, str) or not _SAFE_ID.match(sample_id) or ".." in sample_id:
        raise ValueError(
            f"unsafe {what} {sample_id!r}: use letters, digits, '.', '_' or '-' "
            "(no path separators, no '..', not starting with '.')"
        )
    return sample_id


def category_slug(category: str) -> str:
    """'Tumor Suppressor Genes' -> 'tumor_suppressor_genes' (zarr array key)."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def _fold(fold: int | str) -> str:
    if isinstance(fold, str) and _WILDCARD.match(fold):
        return fold
    return str(int(fold))


@dataclass(frozen=True)
class Layout:
    """Paths of every artifact of one cohort."""

    results_dir: Path
    data_dir: Path
    cohort: str

    def __post_init__(self) -> None:
        check_id(self.cohort, "cohort")
        object.__setattr__(self, "results_dir", Path(self.results_dir))
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @classmethod
    def from_config(cls, config: dict) -> Layout:
        return cls(
            Path(config.get("results_dir", "results")),
            Path(config.get("data_dir", "data")),
            config["cohort"],
        )

    # ---- generated demo inputs ----
    @property
    def demo_dir(self) -> Path:
        return self.data_dir / self.cohort

    def demo_slide(self, slide_id: str) -> Path:
        return self.demo_dir / "slides" / f"{check_id(slide_id, 'slide_id')}.tiff"

    @property
    def demo_omics(self) -> Path:
        return self.demo_dir / "omics.csv"

    @property
    def demo_signatures(self) -> Path:
        return self.demo_dir / "signatures.csv"

    @property
    def demo_sample_sheet(self) -> Path:
        return self.demo_dir / "sample_sheet.tsv"

    @property
    def demo_truth(self) -> Path:
        return self.demo_dir / "truth.csv"

    # ---- results ----
    @property
    def cohort_dir(self) -> Path:
        return self.results_dir / self.cohort

    # ---- cohort bookkeeping ----
    @property
    def sheet(self) -> Path:
        """The validated slide sheet (TSV: slide_id, patient_id, path, mpp_override, sheet,
        line, batch); written by the `sheet` checkpoint from the cohort's input sheet."""
        return self.cohort_dir / "cohort" / "slides.tsv"

    @property
    def qc_sheet(self) -> Path:
        """Rejected sheet rows (TSV: sheet, line, slide_id, patient_id, path, reason_code,
        reason); merged into qc/slides.tsv by qc-slides."""
        return self.cohort_dir / "qc" / "sheet.tsv"

    @property
    def cohort_table(self) -> Path:
        return self.cohort_dir / "cohort" / "patients.tsv"

    @property
    def cohort_summary(self) -> Path:
        return self.cohort_dir / "cohort" / "summary.json"

    def slide_store(self, slide_id: str) -> Path:
        return self.cohort_dir / "slides" / f"{check_id(slide_id, 'slide_id')}.zarr"

    def slide_geojson(self, slide_id: str) -> Path:
        return self.cohort_dir / "slides" / f"{check_id(slide_id, 'slide_id')}.geojson"

    def slide_thumbnail(self, slide_id: str) -> Path:
        return self.cohort_dir / "slides" / f"{check_id(slide_id, 'slide_id')}.png"

    @property
    def qc_slides(self) -> Path:
        return self.cohort_dir / "qc" / "slides.tsv"

    @property
    def qc_omics(self) -> Path:
        return self.cohort_dir / "qc" / "omics.tsv"

    def features_store(self, encoder: str, slide_id: str) -> Path:
        return (
            self.cohort_dir
            / "features"
            / check_id(encoder, "encoder")
            / f"{check_id(slide_id, 'slide_id')}.zarr"
        )

    def features_batch(self, encoder: str, batch: int | str) -> Path:
        """Manifest of one extraction job (TSV: slide_id, store, status, n_tiles, reader, ...)."""
        name = batch if isinstance(batch, str) and _WILDCARD.match(batch) else str(int(batch))
        return (
            self.cohort_dir
            / "features"
            / check_id(encoder, "encoder")
            / "batches"
            / (f"batch{name}.tsv")
        )

    @property
    def omics_store(self) -> Path:
        return self.cohort_dir / "omics.zarr"

    @property
    def extra_store(self) -> Path:
        """Per-patient vectors of ``inputs.extra_tables`` (stage: extra)."""
        return self.cohort_dir / "extra.zarr"

    @property
    def qc_extra(self) -> Path:
        return self.cohort_dir / "qc" / "extra.tsv"

    @property
    def splits_store(self) -> Path:
        return self.cohort_dir / "splits.zarr"

    def fold_store(self, model: str, fold: int | str) -> Path:
        return self.cohort_dir / "train" / check_id(model, "model") / f"fold{_fold(fold)}.zarr"

    def fold_checkpoint(self, model: str, fold: int | str) -> Path:
        return self.cohort_dir / "train" / check_id(model, "model") / f"fold{_fold(fold)}.pt"

    def run_dir(self, model: str) -> Path:
        """train/<model>/: fold stores and checkpoints of one model (`predict --run`)."""
        return self.cohort_dir / "train" / check_id(model, "model")

    @property
    def report_dir(self) -> Path:
        return self.cohort_dir / "report"

    @property
    def report_html(self) -> Path:
        """The cohort page: every model run so far, beside the paper's rows."""
        return self.report_dir / "index.html"

    @property
    def report_models(self) -> Path:
        """JSON of the cohort page: one entry per model report found."""
        return self.report_dir / "models.json"

    def model_report_dir(self, model: str) -> Path:
        return self.report_dir / check_id(model, "model")

    def model_report_html(self, model: str) -> Path:
        return self.model_report_dir(model) / "index.html"

    def model_report_summary(self, model: str) -> Path:
        return self.model_report_dir(model) / "summary.json"

    # ---- raw GDC (cohorts defined by a GDC project) ----
    @property
    def gdc_dir(self) -> Path:
        """data_dir/<cohort>/gdc/: one folder per data kind (manifest, file map, files)."""
        return self.data_dir / self.cohort / "gdc"

    def gdc_kind_dir(self, kind: str) -> Path:
        """data_dir/<cohort>/gdc/<kind>/: one data kind (slides, rna, cnv, mutations, clinical)."""
        return self.gdc_dir / check_id(kind, "GDC kind")

    def gdc_manifest(self, kind: str) -> Path:
        """GDC manifest of one kind (id filename md5 size state; stage: gdc_query)."""
        return self.gdc_kind_dir(kind) / "manifest.txt"

    def gdc_file_map(self, kind: str) -> Path:
        """file -> case -> sample -> aliquot of one kind (TSV, one row per file and entity)."""
        return self.gdc_kind_dir(kind) / "file_map.tsv"

    def gdc_files_dir(self, kind: str) -> Path:
        """Where the files of one kind are downloaded (verified files carry their GDC name)."""
        return self.gdc_kind_dir(kind) / "files"

    def gdc_download_log(self, kind: str) -> Path:
        """Per-file download outcome of one kind (stage: gdc_download)."""
        return self.gdc_kind_dir(kind) / "download_log.tsv"

    @property
    def assembled_dir(self) -> Path:
        """results/<cohort>/gdc/: omics_table.csv, labels.tsv, sample_sheet.tsv (stage: assemble)."""
        return self.cohort_dir / "gdc"

    @property
    def gdc_omics_table(self) -> Path:
        """PORPOISE-layout table assembled from the raw GDC files (input of the omics stage)."""
        return self.assembled_dir / "omics_table.csv"

    @property
    def gdc_labels(self) -> Path:
        """case_id, survival_months, censorship, endpoint, source, source_file, days."""
        return self.assembled_dir / "labels.tsv"

    @property
    def gdc_sample_sheet(self) -> Path:
        """slide_id, patient_id, path: the slide sheet of a GDC cohort (input of `sheet`)."""
        return self.assembled_dir / "sample_sheet.tsv"

    @property
    def gdc_samples(self) -> Path:
        """Which sample/aliquot and file each patient's modality came from, and the others."""
        return self.assembled_dir / "samples.tsv"

    @property
    def gdc_features(self) -> Path:
        """Feature counts per functional category and modality (and the genes kept)."""
        return self.assembled_dir / "features.tsv"

    @property
    def gdc_summary(self) -> Path:
        """Counts and settings of the assembly (JSON)."""
        return self.assembled_dir / "assembly.json"

    @property
    def qc_assembly(self) -> Path:
        """Patients dropped or partial during GDC assembly (qc/omics.tsv columns)."""
        return self.cohort_dir / "qc" / "assembly.tsv"

    @property
    def predictions(self) -> Path:
        return self.cohort_dir / "predict" / "predictions.tsv"

    def log(self, stage: str, name: str = "") -> Path:
        stem = f"{stage}-{name}" if name else stage
        return Path("logs") / self.cohort / f"{stem}.log"

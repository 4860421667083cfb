# Cohort bookkeeping shared by all rules. Parsing never reads a file the DAG makes: the slide
# list comes from the `sheet` checkpoint (input functions below), so a cohort whose sheet is
# generated (demo, GDC) or has bad rows still parses, and every bad row becomes a QC row.
import csv

L = Layout.from_config(config)
DEMO = bool(config["demo"]["enabled"])
GDC = not DEMO and bool((config.get("gdc") or {}).get("project"))
if DEMO and (config.get("gdc") or {}).get("project"):
    raise ValueError(
        f"config: gdc.project is {config['gdc']['project']!r} but demo.enabled is true; "
        "set demo.enabled: false to build the cohort from the GDC"
    )
if DEMO and config["inputs"].get("sample_sheet"):
    raise ValueError(
        "config: inputs.sample_sheet is set but demo.enabled is true; "
        "set demo.enabled: false to run your own cohort"
    )
if DEMO:  # the demo's small tissue islands need smaller area thresholds than the preset's
    config["slides"]["segmentation"] = {
        **(config["demo"].get("segmentation") or {}),
        **(config["slides"].get("segmentation") or {}),
    }
ENCODER = config["features"]["encoder"]
FOLDS = list(range(int(config["splits"]["n_folds"])))


def workflow_path(path):
    """A relative path not found in the working directory is taken beside the Snakefile
    (resources/ ships with the workflow), whatever --directory the run uses."""
    if not path or Path(path).is_absolute() or Path(path).exists():
        return path
    beside = Path(workflow.basedir) / path
    return str(beside) if beside.exists() else path


config["report"]["reference_table"] = workflow_path(config["report"]["reference_table"])
REFERENCE = config["report"]["reference_table"]  # optional: the report says when it is missing
GPUS = int(config["compute"]["gpus_per_job"])  # GPUs per extract/train job (0: CPU-only cluster)
SLIDES_PER_JOB = int(config["features"].get("slides_per_job", 16))

# Models trained in this run: train.models (a list) or else train.model.
MODELS = list(config["train"].get("models") or [config["train"]["model"]])
for _model in MODELS:
    check_id(_model, "train.models entry")
EXTRA_TABLES = dict(config["inputs"].get("extra_tables") or {})  # name -> CSV (M4Survive)
GENOMICS_ONLY = {"snn"}  # models that never read slides (no features input)

wildcard_constraints:
    slide=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    fold=r"\d+",
    batch=r"\d+",


def _resource(relative):
    """A file under the repository's resources/ folder (public reference data we ship)."""
    return str(Path(workflow.basedir) / "resources" / relative)


if DEMO:
    SHEET_IN = str(L.demo_sample_sheet)
    OMICS_TABLE = str(L.demo_omics)
    SIGNATURES = str(L.demo_signatures)
    SPLITS_DIR = None
    UPSTREAM_QC = []
elif GDC:
    SHEET_IN = str(L.assembled_dir / "sample_sheet.tsv")
    OMICS_TABLE = str(L.assembled_dir / "omics_table.csv")
    SIGNATURES = config["inputs"].get("signatures") or _resource("gene_categories.tsv")
    SPLITS_DIR = workflow_path(config["inputs"].get("splits_dir"))
    UPSTREAM_QC = [str(L.qc_assembly)]
else:
    for _key in ("sample_sheet", "omics_table"):
        if not config["inputs"].get(_key):
            raise ValueError(
                f"config: inputs.{_key} is required when demo.enabled is false and no "
                "gdc.project is set (see README, 'Real runs')"
            )
    SHEET_IN = config["inputs"]["sample_sheet"]
    OMICS_TABLE = config["inputs"]["omics_table"]
    SIGNATURES = config["inputs"].get("signatures") or _resource("gene_categories.tsv")
    SPLITS_DIR = workflow_path(config["inputs"].get("splits_dir"))
    UPSTREAM_QC = []


def sheet_rows():
    """slide_id -> row of the validated sheet (after the `sheet` checkpoint has run)."""
    path = checkpoints.sheet.get().output.sheet
    with open(path, newline="") as handle:
        return {row["slide_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


def slide_ids(wildcards=None):
    return sorted(sheet_rows())


def batch_ids():
    return sorted({int(row["batch"]) for row in sheet_rows().values()})


def batch_slides(wildcards):
    return sorted(s for s, row in sheet_rows().items() if int(row["batch"]) == int(wildcards.batch))


def slide_path(wildcards):
    return sheet_rows()[wildcards.slide]["path"]


def tile_stores(wildcards=None):
    return [str(L.slide_store(s)) for s in slide_ids()]


def feature_batches(wildcards=None):
    return [str(L.features_batch(ENCODER, b)) for b in batch_ids()]


def uses_slides(model):
    return model not in GENOMICS_ONLY


def train_options(model):
    """The `train` section for one model: per-model overrides applied, `models` dropped."""
    options = {k: v for k, v in config["train"].items() if k not in {"models", "overrides"}}
    options.update((config["train"].get("overrides") or {}).get(model, {}))
    options["model"] = model
    return json.dumps(options, sort_keys=True)


def options(section):
    """A config section as a JSON string for `wsirisk <stage> --options`."""
    return json.dumps(config[section], sort_keys=True)


def _extract_args(wildcards):
    rows = sheet_rows()
    args = []
    for slide in batch_slides(wildcards):
        args += [
            "--slide", shlex.quote(rows[slide]["path"]),
            "--tiles", str(L.slide_store(slide)),
            "--out", str(L.features_store(ENCODER, slide)),
        ]  # fmt: skip
    return " ".join(args)

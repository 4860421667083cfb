# Sample bookkeeping shared by all rules: which slides, which patient, where the inputs are.
import csv

L = Layout.from_config(config)
DEMO = bool(config["demo"]["enabled"])
ENCODER = config["features"]["encoder"]
MODEL = config["train"]["model"]
FOLDS = list(range(int(config["splits"]["n_folds"])))


def workflow_path(path):
    """A relative path not found in the working directory is taken beside the Snakefile:
    resources/ ships with the workflow, whatever --directory the run uses."""
    if not path or Path(path).is_absolute() or Path(path).exists():
        return path
    beside = Path(workflow.basedir) / path
    return str(beside) if beside.exists() else path


config["report"]["reference_table"] = workflow_path(config["report"]["reference_table"])
REFERENCE = config["report"]["reference_table"]  # optional: shown only when the file exists

wildcard_constraints:
    slide=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    fold=r"\d+",


def _read_sample_sheet(path):
    """slide_id -> {patient_id, path, mpp_override} from a TSV sample sheet."""
    sheet = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"slide_id", "patient_id", "path"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: sample sheet lacks column(s) {sorted(missing)}")
        for row in reader:
            slide = row["slide_id"].strip()
            if slide in sheet:
                raise ValueError(f"{path}: slide_id {slide!r} listed twice")
            sheet[slide] = {
                "patient_id": row["patient_id"].strip(),
                "path": row["path"].strip(),
                "mpp_override": (row.get("mpp_override") or "").strip(),
            }
    return sheet


def _demo_sheet():
    n = int(config["demo"]["n_patients"])
    return {
        f"DEMO-{i:03d}-DX1": {
            "patient_id": f"DEMO-{i:03d}",
            "path": str(L.demo_slide(f"DEMO-{i:03d}-DX1")),
            "mpp_override": "",
        }
        for i in range(n)
    }


if DEMO:
    SHEET = _demo_sheet()
    OMICS_TABLE = str(L.demo_omics)
    SIGNATURES = str(L.demo_signatures)
    SPLITS_DIR = None
elif config["gdc"]["project"]:
    # a GDC cohort: the slide sheet and the omics table come from the gdc_assemble rule
    SHEET = {}
    OMICS_TABLE = str(L.gdc_omics_table)
    SIGNATURES = workflow_path(config["inputs"].get("signatures") or "resources/signatures.csv")
    SPLITS_DIR = config["inputs"].get("splits_dir")
else:
    for key in ("sample_sheet", "omics_table", "signatures"):
        if not config["inputs"].get(key):
            raise ValueError(f"config: inputs.{key} is required when demo.enabled is false")
    SHEET = _read_sample_sheet(config["inputs"]["sample_sheet"])
    OMICS_TABLE = config["inputs"]["omics_table"]
    SIGNATURES = config["inputs"]["signatures"]
    SPLITS_DIR = config["inputs"].get("splits_dir")

SLIDES = sorted(SHEET)
for _slide in SLIDES:
    L.slide_store(_slide)  # raises ValueError naming an unsafe slide_id (e.g. '../x')


def slide_path(wildcards):
    return SHEET[wildcards.slide]["path"]


def options(section):
    """A config section as a JSON string for `wsirisk <stage> --options`."""
    return json.dumps(config[section], sort_keys=True)

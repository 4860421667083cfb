# wsirisk: whole-slide images + omics -> survival risk (ME-Mamba), as a Snakemake DAG.
#   snakemake --cores all                      # the demo cohort of config.yaml
#   snakemake --cores all --configfile my.yaml # a real cohort (sample sheet, or a GDC project)
#   snakemake --profile profiles/slurm         # the same DAG on a SLURM cluster
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("8.20")

# The artifact layout lives in the package (stdlib-only module): import it from src/.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from wsirisk.layout import Layout, check_id  # noqa: E402


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


PREDICT_MODEL = config["predict"].get("model") or MODELS[0]


include: "workflow/rules/demo.smk"
include: "workflow/rules/cohort.smk"
include: "workflow/rules/slides.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/omics.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/gdc_functions.smk"
include: "workflow/rules/gdc.smk"


# Small bookkeeping jobs run where Snakemake runs (no cluster queueing); so do the GDC queries
# and downloads, which need the network that compute nodes often lack.
localrules:
    all,
    sheet,
    qc_slides,
    cohort,
    splits,
    cohort_page,


if GDC:

    localrules:
        gdc_query,
        gdc_download,


rule all:
    input:
        L.report_html,
        [L.model_report_html(m) for m in MODELS],
    default_target: True

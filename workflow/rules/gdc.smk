# A cohort defined by its GDC project (config gdc.project): query -> download -> assemble.
#   gdc_query (checkpoint, per kind)  data/<c>/gdc/<kind>/manifest.txt + file_map.tsv
#   gdc_download (per kind)           data/<c>/gdc/<kind>/files/* + download_log.tsv
#   gdc_assemble                      results/<c>/gdc/{omics_table.csv,labels.tsv,
#                                     sample_sheet.tsv,...} + results/<c>/qc/assembly.tsv
# One download job per kind (not per file): the resumable downloader runs gdc.download.workers
# transfers at once; a file that fails after its retries is named in the log and on stderr and
# becomes a QC row of the assembly, so one bad file never stops the cohort.  Parsing needs no
# file the DAG makes: the assembly's inputs come from the gdc_query checkpoints.
import shlex

GDC_CFG = config["gdc"]
GDC_PROJECT = GDC_CFG["project"]
GDC_KINDS = list(GDC_CFG["kinds"]) if GDC else []  # GDC (common.smk): a project, no demo
# public reference data shipped with the workflow (resources/, beside the Snakefile)
GDC_SIGNATURES = SIGNATURES if GDC else _resource("gene_categories.tsv")


# Only a GDC cohort has these rules (another cohort may read a GDC sheet as a plain input).
if GDC:

    wildcard_constraints:
        kind="slides|rna|cnv|mutations|clinical",


    checkpoint gdc_query:
        input:
            unpack(_gdc_user_files),
        output:
            manifest=L.gdc_manifest("{kind}"),
            file_map=L.gdc_file_map("{kind}"),
        params:
            source=_gdc_query_args,
            endpoint=GDC_CFG["endpoint"],
            slides=GDC_CFG["slides"],
            cnv_source=GDC_CFG["cnv_source"],
            retries=GDC_CFG["download"]["retries"],
            timeout=GDC_CFG["download"]["timeout_s"],
            backoff=GDC_CFG["download"]["backoff_s"],
        log:
            L.log("gdc_query", "{kind}"),
        conda:
            "../../envs/omics.yaml"
        threads: 1
        shell:
            "wsirisk gdc-query --kind {wildcards.kind} {params.source} --endpoint {params.endpoint:q} "
            "--slides {params.slides} --cnv-source {params.cnv_source:q} --retries {params.retries} "
            "--timeout {params.timeout} --backoff {params.backoff} "
            "--out-manifest {output.manifest} --out-map {output.file_map} > {log} 2>&1"


    rule gdc_download:
        input:
            manifest=L.gdc_manifest("{kind}"),
        output:
            log=L.gdc_download_log("{kind}"),
        params:
            out_dir=lambda w: str(L.gdc_files_dir(w.kind)),
            endpoint=GDC_CFG["endpoint"],
            workers=GDC_CFG["download"]["workers"],
            retries=GDC_CFG["download"]["retries"],
            timeout=GDC_CFG["download"]["timeout_s"],
            backoff=GDC_CFG["download"]["backoff_s"],
            token=f"--token-file {shlex.quote(GDC_CFG['token_file'])}" if GDC_CFG.get("token_file") else "",
        log:
            L.log("gdc_download", "{kind}"),
        conda:
            "../../envs/omics.yaml"
        threads: 1
        shell:
            "wsirisk download --manifest {input.manifest} --out {params.out_dir} --log {output.log} "
            "--endpoint {params.endpoint:q} --workers {params.workers} --retries {params.retries} "
            "--timeout {params.timeout} --backoff {params.backoff} {params.token} --keep-going "
            "> {log} 2>&1 && (grep -h '^FAILED' {log} >&2 || true)"  # failed files on the console


    rule gdc_assemble:
        input:
            maps=[L.gdc_file_map(kind) for kind in GDC_KINDS],  # every query starts at once
            logs=_gdc_download_logs,
            signatures=GDC_SIGNATURES,
            cdr=GDC_CFG["cdr_file"] or [],
        output:
            table=L.gdc_omics_table,
            labels=L.gdc_labels,
            sheet=L.gdc_sample_sheet,
            samples=L.gdc_samples,
            features=L.gdc_features,
            summary=L.gdc_summary,
            qc=L.qc_assembly,
        params:
            layout=f"--cohort {L.cohort} --data-dir {shlex.quote(str(L.data_dir))} "
            f"--results-dir {shlex.quote(str(L.results_dir))}",
            project=GDC_PROJECT,
            kinds=",".join(GDC_KINDS),
            survival=GDC_CFG["survival"],
            cnv_source=GDC_CFG["cnv_source"],
            slides=GDC_CFG["slides"],
            min_mut=GDC_CFG["min_mutation_frequency"],
            min_cnv=GDC_CFG["min_cnv_frequency"],
            missing="" if GDC_CFG["keep_missing_modality"] else "--drop-missing-modality",
            cdr=f"--cdr {shlex.quote(GDC_CFG['cdr_file'])}" if GDC_CFG["cdr_file"] else "",
        log:
            L.log("gdc_assemble"),
        conda:
            "../../envs/omics.yaml"
        threads: 1
        shell:
            "wsirisk gdc-assemble {params.layout} --signatures {input.signatures:q} "
            "--project {params.project} "
            "--kinds {params.kinds} --survival {params.survival} --cnv-source {params.cnv_source:q} "
            "--slides {params.slides} --min-mutation-frequency {params.min_mut} "
            "--min-cnv-frequency {params.min_cnv} {params.missing} {params.cdr} > {log} 2>&1 "
            "&& cat {output.features}"


    # `snakemake gdc` stops after the assembly (what the rest of the DAG reads for a GDC_CFG cohort).
    rule gdc:
        input:
            L.gdc_omics_table,
            L.gdc_sample_sheet,
            L.qc_assembly,

# Reports: one per model (C-index beside the paper's row, KM + log-rank, td-AUC/IBS, heatmaps,
# t-SNE per fold, QC), and the cohort page comparing every model run so far.


rule report:
    input:
        folds=lambda w: [L.fold_store(w.model, k) for k in FOLDS],
        omics=L.omics_store,
        qc_slides=L.qc_slides,
        qc_omics=L.qc_omics,
        cohort=L.cohort_summary,
        cohort_table=L.cohort_table,
        features=lambda w: feature_batches() if uses_slides(w.model) else [],
        truth=[L.demo_truth] if DEMO else [],
        reference=[REFERENCE] if REFERENCE and Path(REFERENCE).exists() else [],
    output:
        html=L.model_report_html("{model}"),
        summary=L.model_report_summary("{model}"),
    params:
        config=json.dumps(config, sort_keys=True),
        out_dir=lambda w, output: str(Path(output.html).parent),
    log:
        L.log("report", "{model}"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    shell:
        "wsirisk report --config-json {params.config:q} --model {wildcards.model} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule cohort_page:
    input:
        summaries=[L.model_report_summary(m) for m in MODELS],
        cohort=L.cohort_summary,
        reference=[REFERENCE] if REFERENCE and Path(REFERENCE).exists() else [],
    output:
        html=report(L.report_html, caption="../report/report.rst", category="Report"),
        models=L.report_models,
    params:
        config=json.dumps(config, sort_keys=True),
    log:
        L.log("cohort_page"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    shell:
        "wsirisk cohort-page --config-json {params.config:q} --out {output.html} > {log} 2>&1 "
        "&& echo 'report: {output.html}'"


# Scoring new patients with a trained run (not in the default target):
#   snakemake --cores all predict   (needs predict.sample_sheet and/or predict.omics_table)
rule predict:
    input:
        checkpoints=expand(L.fold_checkpoint(PREDICT_MODEL, "{fold}"), fold=FOLDS),
        folds=expand(L.fold_store(PREDICT_MODEL, "{fold}"), fold=FOLDS),
        sheet=config["predict"]["sample_sheet"] or [],
        table=config["predict"]["omics_table"] or [],
    output:
        L.predictions,
    params:
        run=lambda w, input: str(Path(input.checkpoints[0]).parent),
        sheet=lambda w, input: f"--sample-sheet {input.sheet}" if input.sheet else "",
        table=lambda w, input: f"--omics-table {input.table}" if input.table else "",
        work=lambda w, output: str(Path(output[0]).parent / "cache"),
    log:
        L.log("predict"),
    conda:
        "../../envs/features.yaml"  # tiles and embeds the new slides, then the models
    threads: 2
    resources:
        gpu=GPUS,
    shell:
        "wsirisk predict --run {params.run} {params.sheet} {params.table} "
        "--work-dir {params.work} --out {output} > {log} 2>&1"

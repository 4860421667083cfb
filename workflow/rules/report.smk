# Report: C-index table (beside the paper's), KM curves + log-rank, heatmaps, t-SNE, config, versions.


rule report:
    input:
        folds=expand(L.fold_store(MODEL, "{fold}"), fold=FOLDS),
        omics=L.omics_store,
        qc=L.qc_slides,
        slides=[L.slide_store(s) for s in SLIDES],
        features=[L.features_store(ENCODER, s) for s in SLIDES] if MODEL != "snn" else [],
        truth=[L.demo_truth] if DEMO else [],
        reference=[REFERENCE] if REFERENCE and Path(REFERENCE).exists() else [],
    output:
        html=report(
            L.report_html,
            caption="../report/report.rst",
            category="Report",
        ),
        summary=L.report_summary,
    params:
        config=json.dumps(config, sort_keys=True),
        out_dir=lambda w, output: str(Path(output.html).parent),
    log:
        L.log("report"),
    conda:
        "../../envs/report.yaml"
    threads: 1
    shell:
        "wsirisk report --config-json {params.config:q} --out-dir {params.out_dir} > {log} 2>&1 "
        "&& echo 'report: {output.html}'"


# Scoring new patients with the trained run (not in the default target):
#   snakemake --cores all predict   (needs predict.sample_sheet and/or predict.omics_table)
rule predict:
    input:
        checkpoints=expand(L.fold_checkpoint(MODEL, "{fold}"), fold=FOLDS),
        folds=expand(L.fold_store(MODEL, "{fold}"), fold=FOLDS),
        sheet=config["predict"]["sample_sheet"] or [],
        table=config["predict"]["omics_table"] or [],
    output:
        L.predictions,
    params:
        run=lambda w, input: str(Path(input.checkpoints[0]).parent),
        config=json.dumps(config, sort_keys=True),
        sheet=lambda w, input: f"--sample-sheet {input.sheet}" if input.sheet else "",
        table=lambda w, input: f"--omics-table {input.table}" if input.table else "",
        work=lambda w, output: str(Path(output[0]).parent / "cache"),
    log:
        L.log("predict"),
    conda:
        "../../envs/report.yaml"
    threads: 2
    resources:
        gpu=1,
    shell:
        "wsirisk predict --run {params.run} --config-json {params.config:q} {params.sheet} "
        "{params.table} --work-dir {params.work} --out {output} > {log} 2>&1"

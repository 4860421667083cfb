# Report: C-index table (beside the paper's), KM curves + log-rank, heatmaps, t-SNE, config, versions.


rule report:
    input:
        folds=expand(L.fold_store(MODEL, "{fold}"), fold=FOLDS),
        omics=L.omics_store,
        qc=L.qc_slides,
        slides=[L.slide_store(s) for s in SLIDES],
        features=[L.features_store(ENCODER, s) for s in SLIDES] if MODEL != "snn" else [],
        truth=[L.demo_truth] if DEMO else [],
        reference=[config["report"]["reference_table"]] if config["report"]["reference_table"] else [],
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

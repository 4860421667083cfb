# The cohort: the validated slide sheet (a checkpoint: the slide list is known only after it),
# then one row per patient (slides, omics, label) checked before any training.


checkpoint sheet:
    input:
        SHEET_IN,
    output:
        sheet=L.sheet,
        qc=L.qc_sheet,
    params:
        per_job=SLIDES_PER_JOB,
    log:
        L.log("sheet"),
    conda:
        "../../envs/omics.yaml"
    threads: 1
    shell:
        "wsirisk sheet --sheet {input:q} --out {output.sheet} --qc {output.qc} "
        "--slides-per-job {params.per_job} > {log} 2>&1"


rule cohort:
    input:
        sheet=L.sheet,
        qc_slides=L.qc_slides,
        omics=L.omics_store,
        qc_omics=L.qc_omics,
    output:
        table=L.cohort_table,
        summary=L.cohort_summary,
    params:
        models=",".join(MODELS),
        min_both=config["matching"]["min_both_fraction"],
        allow="--allow-mismatch" if config["matching"]["allow_mismatch"] else "",
    log:
        L.log("cohort"),
    conda:
        "../../envs/train.yaml"  # builds each model to know the modalities it uses (torch)
    threads: 1
    shell:
        # the summary (or the mismatch message) goes to the console as well as the log
        "wsirisk cohort --sheet {input.sheet} --qc-slides {input.qc_slides} "
        "--omics {input.omics} --qc-omics {input.qc_omics} --models {params.models} "
        "--min-both-fraction {params.min_both} {params.allow} --out {output.table} "
        "--summary {output.summary} > {log} 2>&1 || {{ cat {log} >&2; exit 1; }}; cat {log} >&2"

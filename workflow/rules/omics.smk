# Omics: six functional categories per patient (scaling is fit per training fold later); folds.


rule omics:
    input:
        table=OMICS_TABLE,
        signatures=SIGNATURES,
        upstream_qc=UPSTREAM_QC,
    output:
        store=directory(L.omics_store),
        qc=L.qc_omics,
    params:
        upstream=lambda w, input: " ".join(f"--upstream-qc {q}" for q in input.upstream_qc),
    log:
        L.log("omics"),
    conda:
        "../../envs/omics.yaml"
    threads: 1
    shell:
        "wsirisk omics --table {input.table:q} --signatures {input.signatures:q} "
        "--out {output.store} --qc {output.qc} {params.upstream} > {log} 2>&1"


rule splits:
    input:
        L.omics_store,
    output:
        directory(L.splits_store),
    params:
        n_folds=config["splits"]["n_folds"],
        seed=config["splits"]["seed"],
        splits_dir=f"--splits-dir {SPLITS_DIR}" if SPLITS_DIR else "",
    log:
        L.log("splits"),
    conda:
        "../../envs/omics.yaml"
    threads: 1
    shell:
        "wsirisk splits --omics {input} --out {output} --n-folds {params.n_folds} "
        "--seed {params.seed} {params.splits_dir} > {log} 2>&1"


rule extra:
    input:
        tables=list(EXTRA_TABLES.values()),
    output:
        store=directory(L.extra_store),
        qc=L.qc_extra,
    params:
        tables=" ".join(f"--table {shlex.quote(f'{k}={v}')}" for k, v in EXTRA_TABLES.items()),
    log:
        L.log("extra"),
    conda:
        "../../envs/omics.yaml"
    threads: 1
    shell:
        "wsirisk extra {params.tables} --out {output.store} --qc {output.qc} > {log} 2>&1"

# Training: one job per cross-validation fold. Changing `train:` reruns only these and the report.


rule train:
    input:
        omics=L.omics_store,
        splits=L.splits_store,
        features=[L.features_store(ENCODER, s) for s in SLIDES] if MODEL != "snn" else [],
    output:
        store=directory(L.fold_store(MODEL, "{fold}")),
        checkpoint=L.fold_checkpoint(MODEL, "{fold}"),
    params:
        options=options("train"),
    log:
        L.log(f"train-{MODEL}", "fold{fold}"),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=16000,
    shell:
        "wsirisk train --omics {input.omics} --splits {input.splits} --fold {wildcards.fold} "
        "--features {input.features} --options {params.options:q} "
        "--out {output.store} --checkpoint {output.checkpoint} > {log} 2>&1"

# Training: one job per model x cross-validation fold. Changing `train:` reruns only these and
# the reports; tiles and features are kept. The run records its preprocessing (slides and
# features sections) in each checkpoint, so `wsirisk predict --run` needs nothing else.


rule train:
    input:
        omics=L.omics_store,
        splits=L.splits_store,
        cohort=L.cohort_summary,
        features=lambda w: feature_batches() if uses_slides(w.model) else [],
        extra=[L.extra_store] if EXTRA_TABLES else [],
    output:
        store=directory(L.fold_store("{model}", "{fold}")),
        checkpoint=L.fold_checkpoint("{model}", "{fold}"),
    params:
        options=lambda w: train_options(w.model),
        preprocess=json.dumps(
            {"slides": config["slides"], "features": config["features"]}, sort_keys=True
        ),
        features=lambda w, input: (
            f"--features-manifest {' '.join(input.features)}" if input.features else ""
        ),
        extra=lambda w, input: f"--extra {input.extra}" if input.extra else "",
    log:
        L.log("train-{model}", "fold{fold}"),
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=GPUS,
        mem_mb=16000,
    shell:
        "wsirisk train --omics {input.omics} --splits {input.splits} --fold {wildcards.fold} "
        "{params.features} {params.extra} --options {params.options:q} --preprocess {params.preprocess:q} "
        "--out {output.store} --checkpoint {output.checkpoint} > {log} 2>&1"

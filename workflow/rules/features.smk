# Patch features: one job per batch of `features.slides_per_job` slides (the sheet assigns the
# batches). One `wsirisk extract` process builds the encoder once, reads the next slide while the
# current one finishes, and writes/resumes each slide's store on its own; the batch manifest
# lists them. On SLURM a batch is one job asking for one GPU.


rule extract:
    input:
        sheet=L.sheet,
        slides=lambda w: [sheet_rows()[s]["path"] for s in batch_slides(w)],
        tiles=lambda w: [str(L.slide_store(s)) for s in batch_slides(w)],
    output:
        L.features_batch(ENCODER, "{batch}"),
    params:
        slides=_extract_args,
        # slides_per_job shapes the batches, not the features: left out so changing it does
        # not rerun extraction (complete stores are reused by identity anyway)
        options=json.dumps(
            {k: v for k, v in config["features"].items() if k != "slides_per_job"}, sort_keys=True
        ),
    log:
        L.log("extract", "batch{batch}"),
    conda:
        "../../envs/features.yaml"
    threads: 1
    resources:
        gpu=GPUS,
        mem_mb=16000,
    shell:
        "wsirisk extract {params.slides} --manifest {output} --options {params.options:q} "
        "--threads {threads} --no-progress > {log} 2>&1"

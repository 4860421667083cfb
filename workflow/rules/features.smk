# Patch features: one job per slide (GPU when present); on SLURM several slides share a job (group).


rule extract:
    input:
        slide=slide_path,
        tiles=L.slide_store("{slide}"),
    output:
        directory(L.features_store(ENCODER, "{slide}")),
    params:
        options=options("features"),
    log:
        L.log("extract", "{slide}"),
    conda:
        "../../envs/features.yaml"
    group:
        "features"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
    shell:
        "wsirisk extract --slide {input.slide:q} --tiles {input.tiles} --out {output} "
        "--options {params.options:q} --threads {threads} --no-progress > {log} 2>&1"

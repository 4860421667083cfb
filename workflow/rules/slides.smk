# Slides: tissue segmentation + tiles at the target um/px, one job per slide; QC table per cohort.


rule tile:
    input:
        slide=slide_path,
    output:
        store=directory(L.slide_store("{slide}")),
        geojson=L.slide_geojson("{slide}"),
        thumbnail=L.slide_thumbnail("{slide}"),
    params:
        patient=lambda w: SHEET[w.slide]["patient_id"],
        options=options("slides"),
        mpp=lambda w: (
            f"--mpp-override {SHEET[w.slide]['mpp_override']}"
            if SHEET[w.slide]["mpp_override"]
            else ""
        ),
    log:
        L.log("tile", "{slide}"),
    conda:
        "../../envs/slides.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "wsirisk tile {input.slide:q} --slide-id {wildcards.slide} --patient-id {params.patient:q} "
        "--out {output.store} --geojson {output.geojson} --thumbnail {output.thumbnail} "
        "--options {params.options:q} {params.mpp} > {log} 2>&1"


rule qc_slides:
    input:
        [L.slide_store(s) for s in SLIDES],
    output:
        L.qc_slides,
    log:
        L.log("qc_slides"),
    conda:
        "../../envs/slides.yaml"
    threads: 1
    shell:
        "wsirisk qc-slides {input} --out {output} > {log} 2>&1"

# Slides: tissue segmentation + tiles at the target um/px, one job per slide; QC table per cohort.


rule tile:
    input:
        sheet=L.sheet,
        slide=slide_path,
    output:
        store=directory(L.slide_store("{slide}")),
        geojson=L.slide_geojson("{slide}"),
        thumbnail=L.slide_thumbnail("{slide}"),
    params:
        patient=lambda w: sheet_rows()[w.slide]["patient_id"],
        options=options("slides"),
        mpp=lambda w: (
            f"--mpp-override {sheet_rows()[w.slide]['mpp_override']}"
            if sheet_rows()[w.slide]["mpp_override"]
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
        stores=tile_stores,
        sheet=L.sheet,
        sheet_qc=L.qc_sheet,
    output:
        L.qc_slides,
    log:
        L.log("qc_slides"),
    conda:
        "../../envs/slides.yaml"
    threads: 1
    shell:
        "wsirisk qc-slides {input.stores} --sheet {input.sheet} --sheet-qc {input.sheet_qc} "
        "--out {output} > {log} 2>&1"

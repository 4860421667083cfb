# Demo cohort: synthetic pyramidal slides, an omics table and the true risk, generated locally.


rule make_demo:
    output:
        slides=[L.demo_slide(f"DEMO-{i:03d}-DX1") for i in range(config["demo"]["n_patients"])]
        if DEMO
        else [],
        omics=L.demo_omics,
        signatures=L.demo_signatures,
        sample_sheet=L.demo_sample_sheet,
        truth=L.demo_truth,
    params:
        out_dir=lambda w, output: str(Path(output.omics).parent),
        n=config["demo"]["n_patients"],
        seed=config["demo"]["seed"],
        frac_40x=config["demo"]["frac_40x"],
        tiles=config["demo"]["tiles_per_slide"],
    log:
        L.log("make_demo"),
    conda:
        "../../envs/slides.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "wsirisk make-demo --out-dir {params.out_dir} --n-patients {params.n} "
        "--seed {params.seed} --frac-40x {params.frac_40x} --tiles-per-slide {params.tiles} "
        "> {log} 2>&1"

# Downloads (not part of the default target; need internet):
#   snakemake --cores 4 data/tables/tcga_blca_all_clean.csv.zip   # PORPOISE table + splits + signatures
#   snakemake --cores 4 gdc_download                             # files of download.manifest from the GDC


rule fetch_tables:
    output:
        table=Path(config["data_dir"]) / "tables" / "{tcga}_all_clean.csv.zip",
        signatures=Path(config["data_dir"]) / "tables" / "{tcga}_signatures.csv",
    params:
        out_dir=lambda w, output: str(Path(output.table).parent),
    log:
        Path("logs") / "fetch_tables-{tcga}.log",
    conda:
        "../../envs/omics.yaml"
    wildcard_constraints:
        tcga=r"tcga_[a-z]+",
    threads: 1
    shell:
        "wsirisk fetch-tables --cohort {wildcards.tcga} --out {params.out_dir} > {log} 2>&1 "
        "&& cp {params.out_dir}/signatures.csv {output.signatures}"


rule gdc_download:
    input:
        manifest=config["download"]["manifest"] or [],
    output:
        log=Path(config["download"]["out_dir"] or L.data_dir / L.cohort / "gdc") / "download_log.tsv",
    params:
        out_dir=lambda w, output: str(Path(output.log).parent),
    log:
        L.log("gdc_download"),
    conda:
        "../../envs/omics.yaml"
    threads: 4
    shell:
        "wsirisk download --manifest {input.manifest} --out {params.out_dir} "
        "--workers {threads} > {log} 2>&1"

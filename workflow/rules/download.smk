# The PORPOISE/MCAT table import (the second route to the paper's tables; needs internet):
#   snakemake --cores 4 data/tables/tcga_blca_all_clean.csv.zip   # PORPOISE table + splits + signatures
# Raw GDC downloads are the gdc_* rules of gdc.smk (a cohort with gdc.project set).


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

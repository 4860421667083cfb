"""`wsirisk <command> ...`: one entry point; each command's module is imported only when used.

A command module exposes ``build_parser(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``.  Keeping imports lazy keeps light stages (tiling)
free of torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "make-demo": ("wsirisk.demo", "generate the synthetic demo cohort (slides, omics, truth)"),
    "sheet": ("wsirisk.cohort.sheet", "validate the slide sample sheet (bad rows -> QC rows)"),
    "tile": ("wsirisk.slides.tile", "tissue segmentation + 256 px tiling of one slide"),
    "qc-slides": ("wsirisk.slides.qc", "gather per-slide QC into qc/slides.tsv"),
    "export-clam": ("wsirisk.slides.clam", "export tile coordinates to CLAM's h5 layout"),
    "extract": ("wsirisk.features.extract", "patch features of one or more slides"),
    "omics": ("wsirisk.omics.build", "group an omics table into the six categories (zarr)"),
    "extra": ("wsirisk.omics.extra", "per-patient vector tables -> extra.zarr (more modalities)"),
    "omics-summary": ("wsirisk.omics.summary", "patients / events / category sizes as JSON"),
    "download": ("wsirisk.gdc.download", "download GDC files from a manifest or a query"),
    "gdc-query": ("wsirisk.gdc.query", "one data kind of a GDC project -> manifest + file map"),
    "gdc-assemble": ("wsirisk.gdc.build", "downloaded GDC files -> omics table, labels, sheet"),
    "fetch-tables": ("wsirisk.gdc.tables", "fetch the public PORPOISE/MCAT tables and splits"),
    "cohort": ("wsirisk.cohort.table", "one row per patient: slides, omics, label, status"),
    "splits": ("wsirisk.training.splits", "patient-level cross-validation folds"),
    "train": ("wsirisk.training.train", "train one model on one fold"),
    "evaluate-omics": ("wsirisk.training.evaluate_omics", "cross-validate an omics-only model"),
    "report": ("wsirisk.report.build", "one model's report: C-index, td-AUC, IBS, KM, figures"),
    "cohort-page": (
        "wsirisk.report.cohort_page",
        "every model reported on a cohort, beside the paper",
    ),
    "paper-table": ("wsirisk.report.paper_table", "several cohorts' results in the paper's layout"),
    "predict": ("wsirisk.predict", "risk for new patients from a trained run"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: wsirisk <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "wsirisk <command> --help for a command's options"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        from wsirisk import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"wsirisk: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"wsirisk {name}", description=COMMANDS[name][1])
    module.build_parser(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

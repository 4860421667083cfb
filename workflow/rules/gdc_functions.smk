# Input functions of the GDC rules (workflow/rules/gdc.smk): which user files, query arguments
# and download logs a GDC cohort's jobs take. Defined for every config; used only when GDC.


def _gdc_user_files(wildcards):
    """The user's manifest / sample sheet of one kind (gdc.manifests, gdc.sample_sheets)."""
    files = {}
    manifest = (GDC_CFG.get("manifests") or {}).get(wildcards.kind)
    sheet = (GDC_CFG.get("sample_sheets") or {}).get(wildcards.kind)
    if manifest:
        files["manifest"] = manifest
    if sheet:
        if not manifest:
            raise ValueError(f"config: gdc.sample_sheets.{wildcards.kind} needs gdc.manifests.{wildcards.kind}")
        files["sample_sheet"] = sheet
    return files



def _gdc_query_args(wildcards, input):
    if input.get("manifest"):
        args = f"--manifest {shlex.quote(input.manifest)}"
        if input.get("sample_sheet"):
            args += f" --sample-sheet {shlex.quote(input.sample_sheet)}"
    else:
        args = f"--project {shlex.quote(GDC_PROJECT)}"
    cdr = GDC_CFG.get("cdr") or {}
    if wildcards.kind == "clinical" and cdr.get("file_id") and not GDC_CFG.get("cdr_file"):
        args += f" --cdr-id {cdr['file_id']} --cdr-name {shlex.quote(cdr['file_name'])}"
        if cdr.get("md5") and cdr.get("size_bytes") is not None:
            args += f" --cdr-md5 {cdr['md5']} --cdr-size {int(cdr['size_bytes'])}"
    if GDC_CFG.get("token_file"):
        args += f" --token-file {shlex.quote(GDC_CFG['token_file'])}"
    return args



def _gdc_download_logs(wildcards):
    """Download logs of the kinds whose manifest (a gdc_query checkpoint output) lists files."""
    logs = []
    for kind in GDC_KINDS:
        with open(checkpoints.gdc_query.get(kind=kind).output.manifest) as handle:
            if sum(1 for line in handle if line.strip()) > 1:
                logs.append(str(L.gdc_download_log(kind)))
    return logs

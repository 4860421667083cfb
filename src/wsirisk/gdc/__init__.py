"""GDC access and raw-format parsers: query, download, file maps, assembly of a cohort.

Modules (one per stage or format): ``api`` (``/files`` queries), ``query`` (the ``wsirisk
gdc-query`` command: one data kind of a project -> manifest + file map), ``filemap`` (file ->
case -> sample -> aliquot rows from the API or a portal sample sheet), ``transfer`` (one
verified, resumable file transfer), ``download`` (the ``wsirisk download`` command),
``manifest`` (manifests and sample sheets), ``build`` (the ``wsirisk gdc-assemble`` command:
downloaded files -> omics table, labels, slide sheet, QC), ``barcodes``, ``rnaseq``, ``cnv``,
``maf``, ``clinical`` (CDR as xlsx or TSV, portal and Biotab tables), ``assemble`` (a directory
of raw GDC files as gdc-client leaves it -> one PORPOISE/MCAT-layout table) and ``tables``
(``wsirisk fetch-tables``: the public PORPOISE/MCAT tables).
"""

"""GDC access and raw-format parsers: download, barcodes, STAR counts, CNV, MAF, clinical.

Modules (one per format): ``api`` (``/files`` queries), ``transfer`` (one verified,
resumable file transfer), ``download`` (the ``wsirisk download`` command), ``manifest``
(manifests and sample sheets), ``barcodes``, ``rnaseq``, ``cnv``, ``maf``, ``clinical`` and
``assemble`` (a directory of raw GDC files -> one PORPOISE/MCAT-layout table).
"""

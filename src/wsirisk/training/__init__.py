"""Cross-validation splits, survival training of one fold, and omics-only evaluation.

Modules: ``metrics`` (C-index, censoring checks), ``splits`` (patient-level folds), ``data``
(bins, scaler and per-patient samples fit on the training fold only), ``trainer`` (the training
loop), ``train`` / ``evaluate_omics`` (the ``wsirisk train`` / ``wsirisk evaluate-omics`` CLIs).
"""

"""Report stage: survival statistics (plain data), plots, and the HTML page per cohort."""

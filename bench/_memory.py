"""Peak-memory helpers shared by the bench scripts (run them as `python bench/<name>.py`)."""

from __future__ import annotations

import resource
from pathlib import Path


def reset_peak_rss() -> None:
    """Reset this process's RSS high-water mark (Linux >= 4.0; no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss() -> int:
    """This process's RSS high-water mark in bytes (``VmHWM``; not inherited across exec,
    unlike ``ru_maxrss``, which keeps the parent's RSS at fork time)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

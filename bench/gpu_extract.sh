#!/usr/bin/env bash
# One call on a lent GPU machine: install the carried wheels, print versions, run bench/extract.py.
#
#   here, once:      see docs/benchmarks-gpu.md ("Wheels") -> .whl/
#   device tool:     run(command="bash bench/gpu_extract.sh", carry=[".whl"], timeout_s=540)
#
# Everything it prints also goes to $OUT (gpu.txt, versions.txt, bench.txt) when $OUT is set.
set -uo pipefail
OUT=${OUT:-/tmp/wsirisk-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 - <<'PY' 2>&1 | tee "$OUT/versions.txt"
import os, sys
import openslide, simplejpeg, timm, torch, torchvision
print("python", sys.version.split()[0], "| cpus", os.cpu_count(), "| torch", torch.__version__,
      "| torchvision", torchvision.__version__, "| timm", timm.__version__,
      "| simplejpeg", simplejpeg.__version__, "| openslide", openslide.__library_version__)
PY
timeout 480 python3 bench/extract.py --encoder resnet50_trunc --device cuda --batch-size 256 \
  --num-workers 15 --rounds 3 --loader-tiles 1024 --pipeline-tiles 16384 --group-tiles 4096 \
  --n-slides 3 2>&1 | tee "$OUT/bench.txt"

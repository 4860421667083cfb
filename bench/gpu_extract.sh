#!/usr/bin/env bash
# One call on a lent GPU machine: install the carried wheels, print versions, probe the nvJPEG
# decode (bench/gpu_decode_probe.py), then run bench/extract.py.
#
#   here, once:      see docs/benchmarks-gpu.md ("Wheels") -> .whl/; optionally a real Aperio
#                    slide for the probe: mkdir -p .gpu && cp ../shared/data/wsi/CMU-1-Small-Region.svs .gpu/
#                    (.whl/ and .gpu/ are git-ignored: echo '/.gpu/' >> .git/info/exclude)
#   device tool:     run(command="bash bench/gpu_extract.sh", carry=[".whl", ".gpu"], timeout_s=450)
#
# Everything it prints also goes to $OUT (gpu.txt, versions.txt, probe.txt, bench.txt).
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
slides=()
for s in .gpu/*.svs; do [ -e "$s" ] && slides+=(--slide "$s"); done
timeout 90 python3 bench/gpu_decode_probe.py --device cuda --tiles 256 --repeats 5 "${slides[@]}" \
  2>&1 | tee "$OUT/probe.txt"
timeout 360 python3 -X faulthandler bench/extract.py --encoder resnet50_trunc --device cuda --batch-size 256 \
  --num-workers 15 --rounds 3 --loader-tiles 1024 --pipeline-tiles 16384 --group-tiles 4096 \
  --n-slides 3 --pipeline-readers auto,nvjpeg 2>&1 | tee "$OUT/bench.txt"

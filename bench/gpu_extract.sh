#!/usr/bin/env bash
# One call on a lent GPU machine: install the carried wheels, print versions, probe the nvJPEG
# decode (bench/gpu_decode_probe.py, with PROBE=1), then run bench/extract.py.
#
#   here, once:      see docs/benchmarks-gpu.md ("Wheels") -> .whl/; optionally a real Aperio
#                    slide for the probe: mkdir -p .gpu && cp ../shared/data/wsi/CMU-1-Small-Region.svs .gpu/
#                    (.whl/ and .gpu/ are git-ignored: echo '/.gpu/' >> .git/info/exclude)
#   device tool:     run(command="bash bench/gpu_extract.sh", carry=[".whl", ".gpu"], timeout_s=480)
#
# Everything it prints also goes to $OUT (gpu.txt, versions.txt, cpu.txt, probe.txt, check.txt, bench.txt).
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
# CPU topology: how many of the CPUs are cores (loader workers share them)
{ nproc; lscpu | grep -E "^(Model name|Thread|Core|Socket|CPU\(s\)|NUMA node\(s\))"; } 2>&1 | tee "$OUT/cpu.txt"
if [ "${PROBE:-0}" = 1 ]; then  # the nvJPEG probe (measured 2026-11-27; PROBE=1 reruns it)
  slides=()
  for s in .gpu/*.svs; do [ -e "$s" ] && slides+=(--slide "$s"); done
  timeout 90 python3 bench/gpu_decode_probe.py --device cuda --tiles 256 --repeats 5 "${slides[@]}" \
    2>&1 | tee "$OUT/probe.txt"
fi
# the asynchronous loop and the device resize give the serial forward's features (CHECK=0 skips)
if [ "${CHECK:-1}" = 1 ]; then
  timeout 120 python3 bench/extract_check.py --device cuda --tiles 2048 --batch-size 256 \
    --num-workers 8 2>&1 | tee "$OUT/check.txt"
fi
# auto = jpeg decoded by the workers, resized on the GPU (resize_on: auto); jpeg:loader = the
# workers also resize (the default before); NVJPEG=1 adds nvjpeg (GPU decode); 40x and 20x cases
readers=${READERS:-auto,jpeg:loader}
[ "${NVJPEG:-0}" = 1 ] && readers=$readers,nvjpeg
timeout 420 python3 -X faulthandler bench/extract.py --encoder resnet50_trunc --device cuda \
  --batch-size 256 --num-workers 15 --rounds 1 --loader-tiles "${LOADER_TILES:-512}" \
  --pipeline-tiles "${PIPE_TILES:-32768}" --pipeline-rounds 2 --group-tiles 4096 --n-slides 3 \
  --pipeline-cases 40x,20x --pipeline-readers "$readers" --loader-parallel "${PARALLEL-1,16}" \
  2>&1 | tee "$OUT/bench.txt"

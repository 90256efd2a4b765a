#!/usr/bin/env bash
# The GPU path at Music4All-Onion size, in one shot (issue 19 item 4): one epoch of Shallow and BERT4Rec
# (guide with hidden 1024, and paper_code) plus a KNN cell on a CUDA device, with each case's fit and recommend
# time and its peak GPU memory (bench/bench_models.py; 20 000 users, 56 512 tracks). Meant to end in < 8 min.
#
#   bash bench/bench_gpu.sh            # from the repo root, on a machine where torch sees a GPU
#   BENCH_USERS=5000 bash bench/bench_gpu.sh   # a smaller run
#
# The venv must hold a CUDA build of torch (this repo's CPU machines install the CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" - <<'PY'
import torch, sys
if not torch.cuda.is_available():
    sys.exit(f"bench_gpu.sh: torch {torch.__version__} sees no CUDA device; run it on a GPU machine")
print("#", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)
PY
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true
mkdir -p bench/out
USERS="${BENCH_USERS:-20000}"
CASES="knn:guide:1024,shallow:guide:1024,shallow:paper_code:1024,bert4rec:guide:1024,bert4rec:paper_code:1024,bert4rec:paper_code:4800"
"$PY" bench/bench_models.py --device cuda --users "$USERS" --hidden 1024 --timeout 150 --only "$CASES" \
  --json "${BENCH_JSON:-bench/out/gpu.json}" "$@"

#!/usr/bin/env bash
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Per-stage latency of the LeRobot VLA backends with SnapFlow on one CUDA GPU: SmolVLA (~450M)
# and PI05 (~4.1B), real dimensions, random weights, bf16, batch 1, one 480x640 camera; each
# stage CUDA-synchronised, after warm-up. Finishes in about 2-3 minutes (budget: 5), offline.
#
# Needs (the repository's policy venv, or the same packages): Python >= 3.12, torch with CUDA,
# lerobot[smolvla,pi]==0.6.1 (transformers 5.x, tokenizers, safetensors, num2words), and this
# repository importable (pip install -e . or, as done here, PYTHONPATH=<repo root>). No network,
# no model download: backbone configs and a tokenizer are written locally. ~20 GB GPU memory.
#
# Usage: benchmarks/gpu/run_lerobot_latency.sh [OUT_DIR]    (default: $OUT, else
#        benchmarks/results). PYTHON=/path/to/python picks the interpreter; WITH_PI0=1 adds PI0;
#        REPEATS (default 30) and WARMUP (default 5) set the samples per stage.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT_DIR="${1:-${OUT:-$REPO/benchmarks/results}}"
REPEATS="${REPEATS:-30}"
WARMUP="${WARMUP:-5}"
mkdir -p "$OUT_DIR"
cd "$REPO"

if [ -z "${PYTHON:-}" ]; then
  for candidate in "$REPO/.venv/bin/python" python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c "import torch, lerobot, transformers" >/dev/null 2>&1; then
      PYTHON="$candidate"
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ]; then
  echo "no Python with torch, lerobot and transformers found; set PYTHON=..." >&2
  exit 2
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HOME="${HOME:-/tmp}"

"$PYTHON" - <<'PY'
import sys
import lerobot
import torch
import transformers
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, lerobot {lerobot.__version__},"
      f" transformers {transformers.__version__}")
if not torch.cuda.is_available():
    sys.exit("CUDA is not available to torch")
print(f"GPU: {torch.cuda.get_device_name(0)}")
if not lerobot.__version__.startswith("0.6."):
    print(f"warning: written for lerobot 0.6.1, found {lerobot.__version__}", file=sys.stderr)
PY
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true

bench() {
  local policy="$1" limit="$2"
  echo "== $policy (real dimensions, bf16) =="
  timeout "$limit" "$PYTHON" benchmarks/bench_lerobot_latency.py --policy "$policy" \
    --size real --device cuda --dtype bfloat16 --repeats "$REPEATS" --warmup "$WARMUP" \
    --json "$OUT_DIR/lerobot_latency_${policy}_real_bf16.json" \
    || echo "!! $policy failed or timed out (exit $?)" >&2
}

bench smolvla 120
bench pi05 160
if [ "${WITH_PI0:-0}" = "1" ]; then
  bench pi0 160
fi
echo "results in $OUT_DIR"

#!/usr/bin/env bash
# Copyright 2026 The snapflow_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# The whole latency benchmark on one bare CUDA GPU machine, offline, in under 5 minutes
# (BUDGET_S, default 280 s, set-up included): `snapflow bench latency` for the compact policy
# (demo configuration), SmolVLA and PI05 at their real dimensions (random weights, bf16, batch 1,
# one 224 px camera), each with the plain sampler and the speed options, then the CUDA tests of
# the fast path. Every section is time-boxed; a section that fails or runs out of time reports
# what it measured and the next one runs. See benchmarks/gpu/README.md.
#
# Needs: Python >= 3.12 with torch (CUDA), transformers' own dependencies, safetensors,
# tokenizers, einops, opencv, pyyaml; lerobot 0.6.1 and the packages it adds travel as wheels in
# <repo>/.whl (installed with --no-deps into a private folder, nothing downloaded).
#
# Usage: benchmarks/gpu/run_all.sh [OUT_DIR]   (default: $OUT, else benchmarks/results/gpu)
#   PYTHON=... interpreter (default python3); BUDGET_S=... total seconds; REPEATS / WARMUP per
#   stage; WITH_PI0=1 adds PI0; SKIP_TESTS=1 skips the pytest section; CPU_SMOKE=1 runs the same
#   sections on the CPU at tiny dimensions with 2 repeats (a check of the script, not numbers);
#   SECTIONS="..." picks sections (default: tests compact pi05 smolvla pi0 onnx compiled; pi0
#   also needs WITH_PI0=1), e.g. SECTIONS=onnx for the ONNX Runtime sections alone.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT_DIR="${1:-${OUT:-$REPO/benchmarks/results/gpu}}"
BUDGET_S="${BUDGET_S:-280}"
REPEATS="${REPEATS:-20}"
WARMUP="${WARMUP:-3}"
PYTHON="${PYTHON:-python3}"
DEVICE=cuda
SIZE=real
SMOKE_ARGS=()
if [ "${CPU_SMOKE:-0}" = "1" ]; then
  DEVICE=cpu
  SIZE=tiny
  REPEATS=2
  WARMUP=1
  SMOKE_ARGS=(--threads 1)
fi
SECTIONS="${SECTIONS:-tests compact pi05 smolvla pi0 onnx compiled}"
wanted() { [[ " $SECTIONS " == *" $1 "* ]]; }
START_S=$(date +%s)
mkdir -p "$OUT_DIR"
TABLES="$(mktemp -d)"
exec > >(tee -a "$OUT_DIR/run.log") 2>&1
cd "$REPO"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export HOME="${HOME:-/tmp}"
# The wheels' lerobot pins transformers < 5.6 and transformers pins tokenizers <= 0.23.0: the
# private folder goes first on the path so these versions win over the machine's own.
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then
  SITE=/tmp/snapflow_gpu_site
  rm -rf "$SITE"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$REPO"/.whl/*.whl || echo "!! installing the wheels failed: the VLA sections will fail"
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no $REPO/.whl folder: using the interpreter's own packages"
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PYTHON" - <<'PY'
import sys
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA "
      f"{torch.version.cuda}, GPU: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NONE'}")
for name in ("transformers", "tokenizers", "lerobot"):
    try:
        module = __import__(name)
        print(f"{name} {module.__version__} ({module.__file__})")
    except Exception as exc:  # report and go on: the compact sections need none of them
        print(f"!! {name}: {type(exc).__name__}: {exc}")
PY
if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "CUDA is not available to torch"
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
echo "set-up took $(( $(date +%s) - START_S )) s"

remaining() { echo $(( BUDGET_S - ($(date +%s) - START_S) )); }

# section NAME LIMIT_S COMMAND...: run COMMAND time-boxed to min(LIMIT_S, what the budget left).
section() {
  local name="$1" limit="$2" left started code
  shift 2
  left=$(remaining)
  if [ "$left" -lt 25 ]; then
    echo "!! $name skipped: ${left} s of the budget left"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  echo "== $name (time box ${limit} s) =="
  started=$(date +%s)
  # SIGINT first: the benchmark then writes what it measured; SIGKILL 10 s later.
  timeout --signal=INT --kill-after=10 "$limit" "$@"
  code=$?
  echo "== $name: exit $code after $(( $(date +%s) - started )) s =="
}

# The common arguments of every `snapflow bench latency` run; `outputs NAME` adds its files.
BENCH=("$PYTHON" -m snapflow_ros.cli bench latency --device "$DEVICE" --repeats "$REPEATS"
       --warmup "$WARMUP" "${SMOKE_ARGS[@]}")
outputs() { echo "--json $OUT_DIR/latency_$1.json --markdown $TABLES/$1.md"; }

if [ "${SKIP_TESTS:-0}" != "1" ] && wanted tests; then
  section "CUDA tests of the fast path" 45 "$PYTHON" -m pytest -q -p no:cacheprovider \
    --noconftest test/runtime/test_fast_inference.py -k cuda
fi

wanted compact && section "compact policy, demo configuration (128 px, 14 joints, H=50)" 45 \
  "${BENCH[@]}" $(outputs compact) --policy compact --steps 1,2,4,10 \
  --variant naive:path=naive,steps=1+10 --variant sampler:path=sampler --variant fast \
  --variant graph:accelerate=cuda_graph \
  --variant graph_bf16:accelerate=cuda_graph,dtype=bfloat16,steps=1+10

wanted pi05 && section "PI05, $SIZE dimensions, bf16 weights, one 224 px camera" 110 \
  "${BENCH[@]}" $(outputs pi05) --policy pi05 --size "$SIZE" --weights-dtype bfloat16 \
  --steps 1,2,4,10 \
  --variant sampler:path=sampler \
  --variant best:accelerate=cuda_graph,dtype=bfloat16,attention=sdpa,prompt_bucket=16 \
  --variant eager_fast:steps=1 \
  --variant graph:accelerate=cuda_graph,steps=1 \
  --variant graph_autocast:accelerate=cuda_graph,dtype=bfloat16,steps=1 \
  --variant graph_autocast_sdpa:accelerate=cuda_graph,dtype=bfloat16,attention=sdpa,steps=1

wanted smolvla && section "SmolVLA, $SIZE dimensions, bf16 weights, one 224 px camera" 75 \
  "${BENCH[@]}" $(outputs smolvla) --policy smolvla --size "$SIZE" --weights-dtype bfloat16 \
  --steps 1,2,4,10 \
  --variant sampler:path=sampler \
  --variant best:accelerate=cuda_graph,dtype=bfloat16 \
  --variant graph_weights_dtype_only:accelerate=cuda_graph,steps=1

if [ "${WITH_PI0:-0}" = "1" ] && wanted pi0; then
  section "PI0, $SIZE dimensions, bf16 weights" 90 \
    "${BENCH[@]}" $(outputs pi0) --policy pi0 --size "$SIZE" --weights-dtype bfloat16 \
    --steps 1,10 \
    --variant sampler:path=sampler \
    --variant best:accelerate=cuda_graph,dtype=bfloat16,attention=sdpa,prompt_bucket=16
fi

# ONNX Runtime on the graphs of `snapflow export onnx` (made by the benchmark, float32 weights:
# the exporter traces the float32 model), beside the torch paths in the same run. The export
# needs onnx + onnxscript; the CUDA / TensorRT rows need onnxruntime-gpu (a wheel in .whl).
if wanted onnx; then
  ORT_PROBE="$("$PYTHON" - <<'PY'
try:
    import onnx, onnxscript  # noqa: F401  - what torch.onnx.export(dynamo=True) needs
    import onnxruntime as ort
except Exception as exc:  # report and skip: the torch sections need none of them
    print(f"missing {type(exc).__name__}: {exc}")
else:
    print("ok " + " ".join(ort.get_available_providers()))
PY
)"
  echo "onnx / onnxruntime: $ORT_PROBE"
  has_provider() { [[ " $ORT_PROBE " == *" $1 "* ]]; }
  if [[ "$ORT_PROBE" != ok* ]]; then
    echo "!! ONNX sections skipped: $ORT_PROBE (see benchmarks/gpu/README.md, ONNX wheels)"
  elif [ "$DEVICE" = cpu ]; then
    # The smoke run: the CPU execution provider, one thread, tiny models.
    section "ONNX Runtime vs torch, compact policy (CPU EP)" 60 \
      "${BENCH[@]}" $(outputs onnx_compact) --policy compact --steps 1,10 \
      --variant torch:path=fast --variant ort_cpu:backend=onnxruntime,providers=cpu
    section "ONNX Runtime vs torch, SmolVLA $SIZE (CPU EP)" 90 \
      "${BENCH[@]}" $(outputs onnx_smolvla) --policy smolvla --size "$SIZE" --steps 1,10 \
      --variant torch_sampler:path=sampler --variant ort_cpu:backend=onnxruntime,providers=cpu
  elif ! has_provider CUDAExecutionProvider; then
    echo "!! ONNX Runtime CUDA sections skipped: this onnxruntime has only $ORT_PROBE (put an" \
      "onnxruntime-gpu wheel in .whl, see benchmarks/gpu/README.md); compact on its CPU EP only"
    section "ONNX Runtime (CPU EP) vs torch, compact policy" 45 \
      "${BENCH[@]}" $(outputs onnx_compact) --policy compact --steps 1,10 \
      --variant torch_graph_bf16:accelerate=cuda_graph,dtype=bfloat16 \
      --variant ort_cpu_1thread:backend=onnxruntime,providers=cpu,threads=1
  else
    # Torch first: the export happens at the first onnxruntime variant, on every CPU thread.
    section "ONNX Runtime CUDA EP vs torch, compact policy" 60 \
      "${BENCH[@]}" $(outputs onnx_compact) --policy compact --steps 1,10 \
      --variant torch_graph:accelerate=cuda_graph \
      --variant torch_graph_bf16:accelerate=cuda_graph,dtype=bfloat16 \
      --variant ort_cuda:backend=onnxruntime,providers=cuda \
      --variant ort_cpu_1thread:backend=onnxruntime,providers=cpu,threads=1
    # Float32 weights (what the graphs hold): torch's bf16 row is autocast here; the bf16-weight
    # rows are the SmolVLA section's. The export traces on the CPU (minutes on few cores).
    section "ONNX Runtime CUDA EP vs torch, SmolVLA $SIZE dimensions" 200 \
      "${BENCH[@]}" $(outputs onnx_smolvla) --policy smolvla --size "$SIZE" --steps 1,10 \
      --variant torch_graph_bf16:accelerate=cuda_graph,dtype=bfloat16 \
      --variant ort_cuda:backend=onnxruntime,providers=cuda
    if has_provider TensorrtExecutionProvider; then
      # Its own run: TensorRT builds engines when a session starts, and a kill loses the run.
      section "ONNX Runtime TensorRT EP, compact policy" 90 \
        "${BENCH[@]}" $(outputs onnx_tensorrt) --policy compact --steps 1,10 \
        --variant ort_tensorrt:backend=onnxruntime,providers=tensorrt+cuda
    else
      echo "!! ONNX Runtime TensorRT section skipped: no TensorrtExecutionProvider in this build"
    fi
  fi
fi

# Last, with what is left: the compiled expert inside our graphs (compiling takes a while).
if [ "$DEVICE" = cuda ] && wanted compiled; then
  section "compiled expert in CUDA graphs (compact)" 70 \
    "${BENCH[@]}" $(outputs compile_compact) --policy compact --steps 1,10 \
    --variant compiled_graph:accelerate=compile_cuda_graph
  section "compiled expert in CUDA graphs (SmolVLA)" 120 \
    "${BENCH[@]}" $(outputs compile_smolvla) --policy smolvla --size real \
    --weights-dtype bfloat16 --steps 1,10 \
    --variant compiled_graph:accelerate=compile_cuda_graph,dtype=bfloat16
fi

{
  echo "# snapflow bench latency on $("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU (smoke run)')")"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), budget ${BUDGET_S} s, repeats ${REPEATS}, warm-up ${WARMUP}"
  echo
  for table in "$TABLES"/*.md; do
    [ -f "$table" ] && { cat "$table"; echo; }
  done
} > "$OUT_DIR/tables.md"
echo
echo "################################## tables ##################################"
cat "$OUT_DIR/tables.md"
echo "results in $OUT_DIR ($(( $(date +%s) - START_S )) s in all)"

#!/usr/bin/env bash
# The GPU steps of a session (device tool), as calls that each fit the 10-minute limit with room to spare
# (the first one builds _C from scratch; a warm machine keeps the build for the next calls):
#   bash benchmarks/gpu_session.sh tests kernels              (timeout_s=600)
#   bash benchmarks/gpu_session.sh engines                    (timeout_s=600; two AOTInductor compiles)
#   bash benchmarks/gpu_session.sh pipeline                   (timeout_s=600; no configuration starts after 300 s)
#   bash benchmarks/gpu_session.sh train                      (timeout_s=600, carry packed/train-128.npz
#        packed/val-select-128.npz; TRAIN_SKETCH=labels for the other model; one sketch kind per call keeps
#        $OUT within its 8 files: weights, config, log and results JSON of the chosen checkpoint, this log)
#   The val file is small so that the tree and both files fit the 64 MiB carry limit:
#        cheartflow pack --data ../shared/data/acdc --split val --per-patient 6 --out packed/val-select-128.npz
# Each call builds _C with CUDA (incremental), then runs the named stages (at least one; all of them in one call
# would not fit the limit) and leaves the results (JSON/markdown/PNG) and one log in $OUT. Copy the returned results into
# benchmarks/results/ and commit them. No network is used. MODEL=run-folder benchmarks a trained model.
set -uo pipefail
known="tests kernels engines pipeline train"
if [[ $# -eq 0 ]]; then
  echo "usage: bash benchmarks/gpu_session.sh STAGE... (stages: $known; the header of this script lists the calls that each fit the 10-minute device limit)" >&2
  exit 2
fi
for s in "$@"; do
  [[ " $known " == *" $s "* ]] || { echo "gpu_session.sh: unknown stage '$s' (expected one of: $known)" >&2; exit 2; }
done
OUT=${OUT:-/tmp/cheartflow-gpu-out}
mkdir -p "$OUT"
stages="$*"
exec > >(tee "$OUT/gpu-session-${stages// /-}.log") 2>&1
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
step() { echo; echo "== $(date -u +%H:%M:%S) $*"; }
status=0

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

step "build _C in place with CUDA forced on (the benchmarks and tests use this checkout)"
cmake -S . -B build/gpu -DCMAKE_BUILD_TYPE=Release -DCHEARTFLOW_CUDA=ON -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >/dev/null || exit 1
cmake --build build/gpu -j "$(nproc)" || exit 1
export PYTHONPATH=$PWD
python3 -c "import cheartflow_sdk._C as c; assert c.cuda_compiled() and c.cuda_device_count() > 0; print('CUDA kernels usable on', c.cuda_device_count(), 'GPU(s)')" || exit 1

want() { [[ " $stages " == *" $1 "* ]]; }

want tests && step "GPU tests" && { python3 -m pytest -q -p no:cacheprovider tests/test_kernels_cuda.py tests/test_engines_gpu.py tests/test_runtime_cuda.py tests/test_stream.py || status=1; }

want kernels && step "kernel benchmark (issue 3)" && { python3 benchmarks/bench_kernels.py --results-dir "$OUT" || status=1; }
want engines && step "engine benchmark (issue 4)" && { python3 benchmarks/bench_engines.py ${MODEL:-} --results-dir "$OUT" || status=1; }
want train && step "train the default-size ${TRAIN_SKETCH:-edges} model, chosen on val (issue 6)" && {
  python3 benchmarks/quality/train_budgeted.py --sketch "${TRAIN_SKETCH:-edges}" --data packed/train-128.npz \
    --val packed/val-select-128.npz --out "runs/gpu-${TRAIN_SKETCH:-edges}" --budget-s "${TRAIN_BUDGET_S:-360}" \
    --results-dir "$OUT" || status=1; }
want pipeline && step "pipeline benchmark (issue 5)" && { python3 benchmarks/bench_pipeline.py ${MODEL:+--model "$MODEL"} --results-dir "$OUT" --budget-s "${PIPELINE_BUDGET_S:-300}" -v || status=1; }

step "done (status $status)"
ls -la "$OUT"
exit $status

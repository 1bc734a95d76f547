#!/usr/bin/env bash
# One command for a GPU machine without internet (python3 with a CUDA torch, nvcc, cmake, ninja,
# pybind11, scikit-build-core and pytest preinstalled; see BUILD_NOTES.md): build nmmfit against the
# installed torch, run the CUDA tests, run bench/bench_gpu.py, and write a report.
#
#   bash bench/gpu_check.sh                     # report in $NMMFIT_GPU_REPORT, else $OUT/gpu_report.txt,
#                                               # else bench/gpu_report.txt (JSON and logs beside it)
#   QUICK=1 bash bench/gpu_check.sh             # fewer benchmark configurations
#   PYTHON=python3.11 TORCH_CUDA_ARCH_LIST=8.0 bash bench/gpu_check.sh
#   SKIP_BUILD=1 / SKIP_TESTS=1 / SKIP_BENCH=1  # skip a stage
#
# Exit status: non-zero if the build, the tests or the benchmark failed (every stage still runs
# and lands in the report).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
REPORT=${NMMFIT_GPU_REPORT:-${OUT:-$ROOT/bench}/gpu_report.txt}
DIR=$(dirname "$REPORT")
mkdir -p "$DIR"
LOG_BUILD="$DIR/gpu_build.log"; LOG_TEST="$DIR/gpu_tests.log"; LOG_BENCH="$DIR/gpu_bench.log"
JSON="$DIR/bench_gpu.json"
status=0

say() { echo "$@" | tee -a "$REPORT"; }
section() { say ""; say "== $* =="; }
: > "$REPORT"

# The toolkit: CUDA_HOME, else the root of the nvcc on PATH (CMakeLists.txt falls back to /usr/local/cuda).
if [ -z "${CUDA_HOME:-}" ] && [ ! -x /usr/local/cuda/bin/nvcc ] && command -v nvcc >/dev/null; then
  nvcc_real=$(readlink -f "$(command -v nvcc)")
  export CUDA_HOME=$(dirname "$(dirname "$nvcc_real")")
fi
# Build for this GPU only (fast), unless told otherwise.
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  TORCH_CUDA_ARCH_LIST=$($PY -c "import torch; c = torch.cuda.get_device_capability(0); print(f'{c[0]}.{c[1]}')" 2>/dev/null || echo 9.0)
fi
export TORCH_CUDA_ARCH_LIST

section "machine"
say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(hostname)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$REPORT"
say "python: $($PY --version 2>&1)  ($(command -v $PY))"
say "torch: $($PY -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1)"
say "nvcc: $( (${CUDA_HOME:-/usr/local/cuda}/bin/nvcc --version 2>/dev/null || nvcc --version 2>&1) | tail -2 | head -1)"
say "cmake: $(cmake --version 2>/dev/null | head -1)   ninja: $(ninja --version 2>/dev/null)"
say "CUDA_HOME=${CUDA_HOME:-/usr/local/cuda (default)}  TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST  cores: $(nproc)"
say "git: $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l | tr -d ' ') changed files"

if [ -z "${SKIP_BUILD:-}" ]; then
  section "build"
  t0=$(date +%s)
  if $PY -m pip install --no-build-isolation --no-deps -e . >"$LOG_BUILD" 2>&1; then
    say "pip install -e . OK in $(( $(date +%s) - t0 )) s (log: $LOG_BUILD)"
  else
    say "BUILD FAILED after $(( $(date +%s) - t0 )) s; last lines of $LOG_BUILD:"
    tail -40 "$LOG_BUILD" | tee -a "$REPORT"
    status=1
  fi
fi
say "build_info: $($PY -c 'import nmmfit; print(nmmfit.build_info())' 2>&1 | tail -1)"
if ! $PY -c 'import sys, nmmfit; sys.exit(0 if nmmfit.build_info().get("cuda") else 1)' 2>/dev/null; then
  say "ERROR: nmmfit is not built with CUDA: the CUDA tests would all skip and there is nothing to benchmark"
  status=1
fi

if [ -z "${SKIP_TESTS:-}" ]; then
  section "tests (tests/test_cuda.py tests/test_cuda_emulation.py)"
  t0=$(date +%s)
  $PY -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_cuda_emulation.py >"$LOG_TEST" 2>&1
  rc=$?
  grep -E "passed|failed|error" "$LOG_TEST" | tail -1 | tee -a "$REPORT"
  grep -E "^(FAILED|ERROR|SKIPPED)" "$LOG_TEST" | head -40 | tee -a "$REPORT"
  say "pytest exit $rc in $(( $(date +%s) - t0 )) s (log: $LOG_TEST)"
  [ $rc -eq 0 ] || status=1
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  section "benchmark (bench/bench_gpu.py${QUICK:+ --quick})"
  t0=$(date +%s)
  $PY bench/bench_gpu.py ${QUICK:+--quick} --json "$JSON" >"$LOG_BENCH" 2>&1
  rc=$?
  # the tables (not the per-record lines) go into the report
  grep -v "^{'section'" "$LOG_BENCH" | sed -n '/^forward throughput/,$p' | tee -a "$REPORT"
  [ $rc -eq 0 ] || { say "BENCHMARK FAILED (exit $rc); last lines:"; tail -30 "$LOG_BENCH" | tee -a "$REPORT"; status=1; }
  say "benchmark exit $rc in $(( $(date +%s) - t0 )) s (JSON: $JSON, log: $LOG_BENCH)"
fi

section "result"
say "gpu_check: $([ $status -eq 0 ] && echo OK || echo FAILED)  report: $REPORT"
exit $status

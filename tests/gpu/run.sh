#!/usr/bin/env bash
# tests/gpu/run.sh - the one script for a GPU machine: builds ringtrain for
# sm_90 (Release) into build-gpu, runs the `gpu` tests and the GPU benchmarks,
# copies the logs into $OUT (when set) and prints a summary table last.
# Every step has a timeout so that a hang cannot eat the lease; the whole run
# is meant to take 3-5 minutes, stops starting optional steps after
# RT_GPU_BUDGET_S seconds (default 390) and cuts every step short at the hard
# deadline RT_GPU_DEADLINE_S (default 470 s), so the script ends by then.
#
# usage, from the repository root:  bash tests/gpu/run.sh
# Expects CUDA at /usr/local/cuda, Open MPI, NCCL, HDF5, OpenBLAS and cmake;
# protobuf-c from .device-debs/ (its use-debs.sh) when the machine lacks
# it. Exit code: 0 when every gpu test passed
# or was skipped, 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
t0=$(date +%s)
budget=${RT_GPU_BUDGET_S:-390}
jobs=${RT_GPU_JOBS:-16}
build=build-gpu
# Logs go straight into $OUT when it is set, so that they come back even if
# the call is cut off; 7 files (build, ctest, bench_allreduce, bench_ops,
# gpu_train_bench, memcheck, summary), leaving room in $OUT's 8 for a tee of
# stdout.
logs=${OUT:-$root/$build/gpu-logs}
mkdir -p "$logs" "$build"
rm -f "$logs"/*.log
declare -a summary=()
status=0

elapsed() { echo $(( $(date +%s) - t0 )); }
# tmo N: a step's timeout, N seconds but never past the hard deadline
# (RT_GPU_DEADLINE_S, default 470 s after the start), at least 5.
deadline=${RT_GPU_DEADLINE_S:-470}
[ "$budget" -gt $(( deadline - 60 )) ] && budget=$(( deadline - 60 ))
tmo() { local left=$(( deadline - $(elapsed) )); [ "$left" -lt "$1" ] && echo $(( left > 5 ? left : 5 )) || echo "$1"; }
note() { printf '[run.sh %4ss] %s\n' "$(elapsed)" "$*"; }
row() { summary+=("$(printf '%-30s %-8s %s' "$1" "$2" "$3")"); }
finish() {
  echo
  echo "================ ringtrain GPU summary ($(elapsed) s) ================"
  printf '%-30s %-8s %s\n' "step/test" "result" "key figure"
  printf '%-30s %-8s %s\n' "---------" "------" "----------"
  for r in "${summary[@]}"; do echo "$r"; done
  echo "logs: $logs"
  printf '%s\n' "${summary[@]}" >"$logs/summary.log"
  exit "$status"
}
trap 'note "interrupted"; status=1; finish' INT TERM

# ---- environment ----------------------------------------------------------
if [ -f .device-debs/use-debs.sh ]; then
  # shellcheck disable=SC1091
  . .device-debs/use-debs.sh >"$logs/build.log" 2>&1 || note "use-debs.sh reported an error (see build.log)"
fi
export PATH=/usr/local/cuda/bin:$PATH
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
{
  echo "== date"; date -u
  echo "== nvidia-smi -L"; timeout 30 nvidia-smi -L
  echo "== nvidia-smi"; timeout 30 nvidia-smi
  echo "== nvcc --version"; timeout 30 nvcc --version
  echo "== cmake"; command -v cmake; timeout 30 cmake --version | head -1
  echo "== gcc"; timeout 30 gcc --version | head -1
  echo "== mpirun"; timeout 30 mpirun --version 2>&1 | head -1
  echo "== nccl.h"; ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2>/dev/null
  grep -h -E '^#define NCCL_(MAJOR|MINOR|PATCH) ' /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2>/dev/null
  echo "== libnccl"; ldconfig -p | grep -E 'libnccl|libcublas\.|libhdf5\.|libopenblas|libprotobuf-c' || true
  echo "== protoc-c"; command -v protoc-c || echo "missing (needs .device-debs)"
  echo "== /dev/shm"; df -h /dev/shm 2>&1 | tail -1
  echo "== cpus"; nproc
} >>"$logs/build.log" 2>&1
echo "---- device ----"
timeout 30 nvidia-smi -L || note "nvidia-smi -L failed"
timeout 30 nvcc --version | tail -2
gpu=$(timeout 30 nvidia-smi -L 2>/dev/null | head -1 | sed 's/ (UUID.*//')
if [ -n "$gpu" ]; then row "device" "ok" "$gpu"; else row "device" "FAIL" "no GPU listed by nvidia-smi"; status=1; fi

# ---- configure --------------------------------------------------------------
cfg=(-S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DRT_CUDA=ON -DRT_WERROR=ON)
# the python tests in the gpu label need only the standard library; use the
# machine's python3 (/usr/bin/python3 may be absent there)
command -v python3 >/dev/null && cfg+=(-DRT_TEST_PYTHON="$(command -v python3)")
note "configure (Release, sm_90)"
if ! timeout "$(tmo 180)" cmake "${cfg[@]}" >>"$logs/build.log" 2>&1; then
  note "configure failed; retrying with explicit serial-HDF5 and NCCL hints"
  hints=()
  [ -f /usr/include/hdf5/serial/hdf5.h ] && hints+=(
    -DHDF5_C_INCLUDE_DIR=/usr/include/hdf5/serial
    -DHDF5_C_LIBRARY_hdf5=/usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so)
  nccl_h=$(ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2>/dev/null | head -1)
  [ -z "$nccl_h" ] && nccl_h=$(find / -xdev -name nccl.h -path '*include*' 2>/dev/null | head -1)
  nccl_so=$(ldconfig -p | awk '/libnccl\.so/ {print $NF; exit}')
  [ -n "$nccl_h" ] && hints+=(-DNCCL_INCLUDE_DIR="$(dirname "$nccl_h")")
  [ -n "$nccl_so" ] && hints+=(-DNCCL_LIBRARY="$nccl_so")
  echo "== retry with: ${hints[*]}" >>"$logs/build.log"
  if ! timeout "$(tmo 180)" cmake "${cfg[@]}" "${hints[@]}" >>"$logs/build.log" 2>&1; then
    tail -25 "$logs/build.log"
    row "configure" "FAIL" "see build.log"
    status=1
    finish
  fi
fi
grep -E 'ringtrain: CUDA path|Found NCCL|Found HDF5|Found MPI' "$logs/build.log" | head -8
row "configure" "ok" "NCCL $(grep -m1 -E '^NCCL_LIBRARY:' "$build/CMakeCache.txt" | cut -d= -f2)"

# ---- build --------------------------------------------------------------------
gpu_targets=(test_op_cuda test_op_cuda_transformer test_nccl_allreduce bench_nccl_allreduce bench_ops_cuda
  test_train_cuda test_train_cuda_gpt bench_gpu_train ringtrain)
build_ok=1
note "build the gpu targets, then everything (-j$jobs)"
if ! timeout "$(tmo 300)" cmake --build "$build" -j"$jobs" --target "${gpu_targets[@]}" >>"$logs/build.log" 2>&1; then
  build_ok=0
elif ! timeout "$(tmo 300)" cmake --build "$build" -j"$jobs" >>"$logs/build.log" 2>&1; then
  note "the full build failed; the gpu targets built (see build.log)"
  row "build (all targets)" "FAIL" "gpu targets built; see build.log"
  status=1
fi
if [ "$build_ok" = 0 ]; then
  # A newer compiler here than on the CI machine can turn a new warning into
  # an error. The GPU checks matter more than that: rebuild once with
  # RT_WERROR off (the warnings stay on, in build.log), and say so.
  grep -m 8 -E 'error|Error' "$logs/build.log"
  note "gpu targets failed to build with -Werror; retrying without -Werror"
  timeout "$(tmo 120)" cmake "$build" -DRT_WERROR=OFF >>"$logs/build.log" 2>&1
  if timeout "$(tmo 300)" cmake --build "$build" -j"$jobs" --target "${gpu_targets[@]}" >>"$logs/build.log" 2>&1; then
    row "build (gpu targets)" "WARN" "built only WITHOUT -Werror: see build.log"
    status=1
  else
    grep -m 12 -E 'error' "$logs/build.log"
    row "build (gpu targets)" "FAIL" "see build.log"
    status=1
    finish
  fi
else
  row "build (gpu targets)" "ok" "Release, CUDA architectures $(grep -m1 -E '^CMAKE_CUDA_ARCHITECTURES:' "$build/CMakeCache.txt" | cut -d= -f2)"
fi

# ---- tests ----------------------------------------------------------------------
note "ctest -L gpu"
(cd "$build" && timeout "$(tmo 330)" ctest -L gpu -V --output-on-failure --timeout 180) >"$logs/ctest.log" 2>&1
ctest_rc=$?
[ "$ctest_rc" = 124 ] && row "ctest -L gpu" "TIMEOUT" "cut off at the deadline; tests not listed below did not run"
grep -E '^ *[0-9]+/[0-9]+ Test|tests passed|tests failed' "$logs/ctest.log"
[ "$ctest_rc" = 0 ] || status=1
# one row per test, with its key figure from its own output (ctest -V
# prefixes each output line with the test's number)
result_of() { # test name -> ok / FAIL / skipped / not run
  local line
  line=$(grep -E "Test +#[0-9]+: $1 " "$logs/ctest.log" | tail -1)
  case "$line" in
    *Passed*) echo ok ;; *Skipped*|*"Not Run"*) echo skipped ;; "") echo "not run" ;; *) echo FAIL ;;
  esac
}
lines_of() { # test name -> its output lines, prefix removed
  local num
  num=$(grep -m1 -oE "Test +#[0-9]+: $1 " "$logs/ctest.log" | grep -oE '[0-9]+' | head -1)
  [ -n "$num" ] && grep -E "^$num: " "$logs/ctest.log" | sed -E "s/^$num: //"
}
ran_tests=$(grep -oE 'Test +#[0-9]+: [A-Za-z0-9_]+' "$logs/ctest.log" | awk '{print $NF}' | sort -u)
for t in $ran_tests; do
  out=$(lines_of "$t")
  res=$(result_of "$t")
  skip=$(echo "$out" | grep -m1 '^SKIP' | sed 's/^SKIP: //')
  case "$t" in
    test_op_cuda|test_op_cuda_transformer)
      worst=$(echo "$out" | grep -E '^op ' | grep -o 'err/tol=[0-9a-z.e+-]*' | cut -d= -f2 | sort -g | tail -1)
      fig="$(echo "$out" | grep -cE '^op .* ok$') op checks ok, $(echo "$out" | grep -cE '^op .*FAIL') failed; worst err/tol ${worst:-n/a}" ;;
    test_nccl_allreduce*)
      worst=$(echo "$out" | grep -E '^allreduce ' | grep -oE '(err/tol|host|nccl)=[0-9a-z.e+-]*' | cut -d= -f2 | sort -g | tail -1)
      fig="$(echo "$out" | grep -cE '^allreduce .* ok$') cases ok, $(echo "$out" | grep -cE '^allreduce .*FAIL') failed, worst err/tol ${worst:-n/a}"
      echo "$out" | grep -q '^wait-timeout: .* ok$' && fig="$fig; wait-timeout ok"
      echo "$out" | grep -q 'NCCL_HOSTID' && fig="$fig; socket transport" ;;
    test_train_cuda)
      wl=$(echo "$out" | grep -E '^train .* vs cpu:' | grep -oE 'worst loss rel [0-9.e+-]+' | awk '{print $4}' | sort -g | tail -1)
      wp=$(echo "$out" | grep -E '^train .* vs cpu:' | grep -oE 'params rel [0-9.e+-]+' | awk '{print $3}' | sort -g | tail -1)
      mode=$(echo "$out" | grep -E '^train adamw vs cpu:' | grep -oE 'mode [a-z]+' | head -1)
      fig="$(echo "$out" | grep -cE '^train .* ok$') checks ok, $(echo "$out" | grep -cE '^train .*FAIL$') failed; vs cpu loss rel ${wl:-n/a}, params rel ${wp:-n/a}; ${mode:-mode n/a}" ;;
    test_train_cuda_gpt)
      wl=$(echo "$out" | grep -E '^train gpt .* vs cpu:' | grep -v teacher | grep -oE 'worst loss rel [0-9.e+-]+' | awk '{print $4}' | sort -g | tail -1)
      wf=$(echo "$out" | grep -E '^train gpt .* teacher-forced vs cpu:' | grep -oE 'worst loss rel [0-9.e+-]+' | awk '{print $4}' | sort -g | tail -1)
      wp=$(echo "$out" | grep -E '^train gpt .* vs cpu:' | grep -v teacher | grep -oE 'params rel [0-9.e+-]+' | awk '{print $3}' | sort -g | tail -1)
      fig="$(echo "$out" | grep -cE '^train gpt .* ok$') checks ok, $(echo "$out" | grep -cE '^train gpt .*FAIL$') failed; loss rel ${wl:-n/a} (forced ${wf:-n/a}), params rel ${wp:-n/a}" ;;
    test_train_cuda_e2e)
      ec=$(echo "$out" | grep -oE 'e2e cuda vs cpu: worst rel [0-9.e+-]+' | awk '{print $NF}')
      e2=$(echo "$out" | grep -oE 'e2e np2 ring vs np1: worst rel [0-9.e+-]+' | awk '{print $NF}')
      fig="cuda vs cpu rel ${ec:-n/a}; np2 ring vs np1 rel ${e2:-n/a}; $(echo "$out" | grep -cE '^ok ') ok, $(echo "$out" | grep -cE '^FAIL ') failed" ;;
    test_bench_nccl)
      fig=$(echo "$out" | grep -m1 '^bench nccl np=1:' | sed 's/^bench nccl np=1: //') ;;
    *) fig="" ;;
  esac
  [ -n "$skip" ] && fig="$skip"
  row "$t" "$res" "${fig:0:110}"
done
[ -z "$ran_tests" ] && row "ctest -L gpu" "FAIL" "no test ran; see ctest.log" && status=1
if grep -qE '^[0-9]+: FAIL|^[0-9]+: FATAL|^[0-9]+: r[0-9]+ (ring|ref):' "$logs/ctest.log"; then
  echo "---- failures reported by the tests (first 30) ----"
  grep -E '^[0-9]+: FAIL|^[0-9]+: FATAL|^[0-9]+: r[0-9]+ (ring|ref):' "$logs/ctest.log" | head -30 | cut -c1-240
fi

# ---- benchmarks --------------------------------------------------------------
if [ "$(elapsed)" -lt "$budget" ]; then
  note "bench: device all-reduce, ours vs ncclAllReduce, np=1"
  timeout "$(tmo 150)" mpirun -np 1 --oversubscribe "$build/tests/gpu/bench_nccl_allreduce" \
    >"$logs/bench_allreduce.log" 2>&1
  brc=$?
  if grep -q '^SKIP' "$logs/bench_allreduce.log"; then
    row "bench_nccl_allreduce np=1" "skipped" "$(grep -m1 '^SKIP' "$logs/bench_allreduce.log")"
  elif [ "$brc" = 0 ]; then
    cat "$logs/bench_allreduce.log"
    big=$(awk '$1 ~ /^[0-9]+$/ {l=$0} END {print l}' "$logs/bench_allreduce.log")
    row "bench_nccl_allreduce np=1" "ok" "$(echo "$big" | awk '{printf "%s B: ring %s us, nccl %s us, copy %s GB/s", $1, $3, $4, $9}')"
  else
    tail -20 "$logs/bench_allreduce.log"
    row "bench_nccl_allreduce np=1" "FAIL" "see bench_allreduce.log"
    status=1
  fi
else
  row "bench_nccl_allreduce np=1" "skipped" "time budget spent"
fi
# The same pair through the CLI (`ringtrain bench allreduce --backend nccl`,
# every result checked), table appended to bench_allreduce.log ($OUT is full).
if [ "$(elapsed)" -lt "$budget" ]; then
  note "bench: ringtrain bench allreduce --backend nccl, np=1, 4K..256M"
  clog=$build/bench_cli_nccl.log
  timeout "$(tmo 120)" mpirun -np 1 --oversubscribe "$build/launch/ringtrain" bench allreduce \
    --backend nccl --min 4K --max 256M >"$clog" 2>&1
  brc=$?
  { echo; echo "== ringtrain bench allreduce --backend nccl --min 4K --max 256M (np=1), exit $brc"; cat "$clog"; } \
    >>"$logs/bench_allreduce.log"
  cat "$clog"
  big=$(awk '$1 ~ /^[0-9]+$/ {l=$0} END {print l}' "$clog")
  if [ "$brc" = 0 ] && [ -n "$big" ]; then
    row "bench cli --backend nccl np=1" "ok" "$(echo "$big" | awk '{printf "%s B: ring %s us, nccl %s us, nccl/ring %s; #wrong 0", $1, $3, $7, $11}')"
  else
    row "bench cli --backend nccl np=1" "FAIL" "rc=$brc; see bench_allreduce.log"
    status=1
  fi
else
  row "bench cli --backend nccl np=1" "skipped" "time budget spent"
fi
if [ "$(elapsed)" -lt "$budget" ]; then
  note "bench: ops against the copy and sgemm ceilings"
  timeout "$(tmo 120)" "$build/tests/gpu/bench_ops_cuda" >"$logs/bench_ops.log" 2>&1
  brc=$?
  cat "$logs/bench_ops.log"
  if [ "$brc" = 0 ]; then
    row "bench_ops_cuda" "ok" "$(awk '/^copy 1 GiB/ {c=$(NF-1)} /^linear 4096\^3 fp32/ {f=$NF} /^linear 4096\^3 tf32/ {t=$NF} END {printf "copy %s GB/s, sgemm fp32 %s TFLOP/s, tf32 %s", c, f, t}' "$logs/bench_ops.log")"
  elif [ "$brc" = 77 ]; then
    row "bench_ops_cuda" "skipped" "no CUDA device"
  else
    row "bench_ops_cuda" "FAIL" "rc=$brc; see bench_ops.log"
    status=1
  fi
else
  row "bench_ops_cuda" "skipped" "time budget spent"
fi
# The training step against PyTorch on this GPU (MLP 784-1024-1024-10,
# AdamW, batch 512 and 4096); torch.compile only when time is left for it.
if [ "$(elapsed)" -lt "$budget" ]; then
  note "bench: GPU training step vs PyTorch (bench/gpu_train_vs_torch.sh)"
  comp=1
  [ "$(( budget - $(elapsed) ))" -lt 200 ] && comp=0
  RT_BENCH_COMPILE=$comp timeout "$(tmo 360)" bash bench/gpu_train_vs_torch.sh "$build" \
    >"$logs/gpu_train_bench.log" 2>&1
  brc=$?
  tail -6 "$logs/gpu_train_bench.log"
  for b in 512 4096; do
    line=$(grep -m1 "^RESULT batch=$b " "$logs/gpu_train_bench.log")
    v() { echo "$line" | grep -oE " $1=[^ ]+" | head -1 | cut -d= -f2; }
    if [ -z "$line" ] || [ "$(v ours)" = fail ]; then
      row "bench train vs torch b=$b" "FAIL" "rc=$brc; see gpu_train_bench.log"
      status=1
    else
      row "bench train vs torch b=$b" "ok" "ours $(v ours)/s (synced $(v ours_synced)); torch eager $(v eager), compile $(v compile); x$(v ratio_eager) eager, x$(v ratio_compile) compile"
    fi
  done
else
  row "bench train vs torch" "skipped" "time budget spent"
fi
# Further GPU benchmarks go here, each under a timeout, one log file each:
# $OUT takes at most 8 files, and this script writes 7 (build, ctest,
# bench_allreduce, bench_ops, gpu_train_bench, memcheck, summary).

# ---- optional: memcheck of the op kernels -----------------------------------------
if [ "$(elapsed)" -lt "$budget" ] && command -v compute-sanitizer >/dev/null; then
  note "compute-sanitizer memcheck of test_op_cuda (quick sizes)"
  if RT_TEST_QUICK=1 timeout "$(tmo 150)" compute-sanitizer --tool memcheck --leak-check no \
      --error-exitcode 3 "$build/tests/gpu/test_op_cuda" >"$logs/memcheck.log" 2>&1; then
    row "memcheck test_op_cuda" "ok" "$(grep -m1 'ERROR SUMMARY' "$logs/memcheck.log")"
  else
    rc=$?
    grep -m 10 -E 'ERROR|Invalid|FAIL' "$logs/memcheck.log"
    if [ "$rc" = 124 ]; then
      row "memcheck test_op_cuda" "timeout" "150 s limit; see memcheck.log"
    else
      row "memcheck test_op_cuda" "FAIL" "rc=$rc: $(grep -m1 'ERROR SUMMARY' "$logs/memcheck.log")"
      status=1
    fi
  fi
else
  row "memcheck test_op_cuda" "skipped" "no compute-sanitizer or time budget spent"
fi
# The transformer's kernels too (quick sizes), appended to the same log:
# $OUT has no room for another file.
if [ "$(elapsed)" -lt "$budget" ] && command -v compute-sanitizer >/dev/null; then
  note "compute-sanitizer memcheck of test_op_cuda_transformer (quick sizes)"
  tlog=$build/memcheck_transformer.log
  if RT_TEST_QUICK=1 timeout "$(tmo 120)" compute-sanitizer --tool memcheck --leak-check no \
      --error-exitcode 3 "$build/tests/gpu/test_op_cuda_transformer" >"$tlog" 2>&1; then
    row "memcheck op_cuda_transformer" "ok" "$(grep -m1 'ERROR SUMMARY' "$tlog")"
  else
    rc=$?
    grep -m 10 -E 'ERROR|Invalid|FAIL' "$tlog"
    if [ "$rc" = 124 ]; then
      row "memcheck op_cuda_transformer" "timeout" "120 s limit; see memcheck.log"
    else
      row "memcheck op_cuda_transformer" "FAIL" "rc=$rc: $(grep -m1 'ERROR SUMMARY' "$tlog")"
      status=1
    fi
  fi
  { echo; echo "== test_op_cuda_transformer"; cat "$tlog"; } >>"$logs/memcheck.log"
else
  row "memcheck op_cuda_transformer" "skipped" "no compute-sanitizer or time budget spent"
fi

finish

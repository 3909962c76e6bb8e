#!/usr/bin/env bash
# train_throughput.sh - training throughput of ringtrain's CPU path against
# PyTorch on the CPU, in one run, on this machine:
#  1. one training step at batch 512 (mlp:784,1024,1024,10, AdamW):
#     ringtrain (bench_train_step: training steps through the session, the
#     call `ringtrain train` makes) and bench/torch_peer.py with the
#     same threads; PyTorch is timed as installed and again with the OpenBLAS
#     kernels ringtrain picks (OPENBLAS_CORETYPE, see trainer/cpu_env.h), and
#     the ratio is taken against the faster of the two.
#  2. data-parallel scaling: `ringtrain train` np=1 against np=2, 1 thread
#     per rank, same per-rank batch, samples/s from the metrics (needs a
#     dataset: --data F.h5, e.g. Fashion-MNIST imported with ringtrain data).
# Usage: bench/train_throughput.sh BUILD_DIR [--threads N] [--batch N] [--data F.h5] [--steps N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: train_throughput.sh BUILD_DIR [--threads N] [--batch N] [--data F.h5]}
shift
threads=$(nproc); batch=512; data=""; steps=60
while (($#)); do
  case $1 in
    --threads) threads=$2; shift 2;;
    --batch) batch=$2; shift 2;;
    --data) data=$2; shift 2;;
    --steps) steps=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
# the project's copy of the PyTorch peer; RT_TORCH_PEER names another
peer=${RT_TORCH_PEER:-$here/torch_peer.py}
[ -f "$peer" ] || { echo "train_throughput.sh: no PyTorch peer at $peer (RT_TORCH_PEER names one)" >&2; exit 2; }
py=/usr/bin/python3
# bench_train_step prints the session's log lines before its JSON object
field() { grep "^{" | $py -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Three rounds, each running all three back to back, and the median of each:
# the machine is shared, so the load changes between runs.
round() {
  "$build/tests/trainer/bench_train_step" --model mlp:784,1024,1024,10 --batch "$batch" \
    --threads "$threads" --optimizer adamw --iters 20
  $py "$peer" mlp --sizes 784,1024,1024,10 --batch "$batch" --threads "$threads" \
    --optimizer adamw --iters 20
  OPENBLAS_CORETYPE=$core $py "$peer" mlp --sizes 784,1024,1024,10 --batch "$batch" \
    --threads "$threads" --optimizer adamw --iters 20 |
    sed 's/"peer": "pytorch"/"peer": "pytorch+coretype"/'
}
core=$("$build/tests/trainer/bench_train_step" --model mlp:784,1024,1024,10 --batch 8 --iters 1 | field blas_core)
out=$(for r in 1 2 3; do round; done)
echo "$out"
echo "$out" | $py -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
med = lambda p: statistics.median(r["samples_per_s"] for r in rows if r["peer"] == p)
o, p1, p2 = med("ringtrain"), med("pytorch"), med("pytorch+coretype")
best = max(p1, p2)
print(f"step (median of 3 rounds): ringtrain {o:.0f} samples/s, pytorch {p1:.0f} (as installed), "
      f"{p2:.0f} (OPENBLAS_CORETYPE='"$core"'); ratio {o / best:.2f}x against the faster PyTorch, "
      f"{o / p1:.2f}x against PyTorch as installed")'

if [ -n "$data" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  for r in 1 2 3; do
    for np in 1 2; do
      mpirun -np $np --oversubscribe --bind-to none "$build/launch/ringtrain" train \
        --model mlp:784,1024,1024,10 --data "$data" --batch "$batch" --steps "$steps" \
        --optimizer adamw --lr 1e-3 --threads 1 --log-every 10 --metrics "$tmp/np$np.$r.jsonl" >/dev/null
    done
  done
  $py - "$tmp" "$batch" <<'PY'
import json, statistics, sys
def rate(path):
    rows = [json.loads(l) for l in open(path) if '"samples_per_s"' in l]
    rows = rows[len(rows) // 3:]          # skip the warm-up third
    return sum(r["samples_per_s"] for r in rows) / len(rows)
d = sys.argv[1]
r1 = statistics.median(rate(f"{d}/np1.{r}.jsonl") for r in (1, 2, 3))
r2 = statistics.median(rate(f"{d}/np2.{r}.jsonl") for r in (1, 2, 3))
print(f"scaling (median of 3 rounds; 1 thread per rank, batch {sys.argv[2]} per rank): np=1 {r1:.0f} samples/s, "
      f"np=2 {r2:.0f} samples/s, speedup {r2 / r1:.2f}x (efficiency {r2 / r1 / 2:.0%})")
PY
fi

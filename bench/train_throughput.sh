#!/usr/bin/env bash
# train_throughput.sh - training throughput of ringtrain's CPU path against
# PyTorch on the CPU, in one run, on this machine:
#  1. one training step at batch 512 (mlp:784,1024,1024,10, AdamW):
#     ringtrain (bench_train_step) and ../shared/bench/torch_peer.py with the
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
peer=${RT_TORCH_PEER:-$here/../../shared/bench/torch_peer.py}
[ -f "$peer" ] || peer=/work/shared/bench/torch_peer.py
py=/usr/bin/python3
field() { $py -c "import json,sys; print(json.loads(sys.stdin.readline())['$1'])"; }

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=$("$build/tests/trainer/bench_train_step" --model mlp:784,1024,1024,10 --batch "$batch" \
       --threads "$threads" --optimizer adamw --iters 20)
echo "$ours"
t1=$($py "$peer" mlp --sizes 784,1024,1024,10 --batch "$batch" --threads "$threads" --optimizer adamw --iters 20)
echo "$t1"
core=$(echo "$ours" | field blas_core)
t2=$(OPENBLAS_CORETYPE=$core $py "$peer" mlp --sizes 784,1024,1024,10 --batch "$batch" \
     --threads "$threads" --optimizer adamw --iters 20)
echo "$t2" | sed 's/"peer": "pytorch"/"peer": "pytorch+OPENBLAS_CORETYPE='"$core"'"/'
o=$(echo "$ours" | field samples_per_s); p1=$(echo "$t1" | field samples_per_s)
p2=$(echo "$t2" | field samples_per_s)
$py - "$o" "$p1" "$p2" <<'PY'
import sys
o, p1, p2 = map(float, sys.argv[1:])
best = max(p1, p2)
print(f"step: ringtrain {o:.0f} samples/s, pytorch {p1:.0f} (as installed), {p2:.0f} "
      f"(same OpenBLAS kernels); ratio {o / best:.2f}x against the faster PyTorch, "
      f"{o / p1:.2f}x against PyTorch as installed")
PY

if [ -n "$data" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  for np in 1 2; do
    mpirun -np $np --oversubscribe --bind-to none "$build/launch/ringtrain" train \
      --model mlp:784,1024,1024,10 --data "$data" --batch "$batch" --steps "$steps" \
      --optimizer adamw --lr 1e-3 --threads 1 --log-every 10 --metrics "$tmp/np$np.jsonl" >/dev/null
  done
  $py - "$tmp/np1.jsonl" "$tmp/np2.jsonl" "$batch" <<'PY'
import json, sys
def rate(path):
    rows = [json.loads(l) for l in open(path) if '"samples_per_s"' in l]
    rows = rows[len(rows) // 3:]          # skip the warm-up third
    return sum(r["samples_per_s"] for r in rows) / len(rows)
r1, r2 = rate(sys.argv[1]), rate(sys.argv[2])
print(f"scaling (1 thread per rank, batch {sys.argv[3]} per rank): np=1 {r1:.0f} samples/s, "
      f"np=2 {r2:.0f} samples/s, speedup {r2 / r1:.2f}x (efficiency {r2 / r1 / 2:.0%})")
PY
fi

#!/usr/bin/env bash
# bench_loader.sh - the loader benchmark with its peer, in one run: imports
# Fashion-MNIST (train) if needed, runs bench_loader (ours) for 1 and 2
# workers, copied and zero-copy, then bench_loader_torch.py (PyTorch
# DataLoader, an in-memory gather, and the MLP step rate that bounds what a
# trainer consumes), and prints the ratios.
#   bench/bench_loader.sh BUILD_DIR [SECONDS]
set -euo pipefail
build=${1:?usage: bench_loader.sh BUILD_DIR [SECONDS]}
secs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
src=/usr/share/datasets/fashion-mnist
data=$build/fmnist-train.h5
if [ ! -f "$data" ]; then
  "$build/launch/ringtrain" data import-idx --images "$src/train-images-idx3-ubyte.gz" \
    --labels "$src/train-labels-idx1-ubyte.gz" --out "$data"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
ours=()
for w in 1 2; do
  for zc in "" "--zero-copy"; do
    line=$("$build/data/bench_loader" --data "$data" --batch 512 --seconds "$secs" --workers $w $zc --json)
    echo "ringtrain: $line"
    ours+=("$line")
  done
done
peer=$(/usr/bin/python3 "$here/bench_loader_torch.py" --data "$data" --batch 512 --seconds "$secs" --json)
echo "pytorch:   $peer"
/usr/bin/python3 - "$peer" "${ours[@]}" <<'PY'
import json, sys
peer = json.loads(sys.argv[1])
for line in sys.argv[2:]:
    o = json.loads(line)
    r = o["loader_batches_per_s"]
    extra = f", {r / peer['mlp_cuda_steps_per_s']:.1f}x the CUDA MLP step rate" if "mlp_cuda_steps_per_s" in peer else ""
    print(f"workers {o['workers']} zero_copy {o['zero_copy']}: {r:.0f} batches/s = "
          f"{r / peer['dataloader_batches_per_s']:.1f}x torch DataLoader, "
          f"{r / peer['gather_batches_per_s']:.2f}x torch gather, "
          f"{r / peer['mlp_cpu_steps_per_s']:.0f}x the CPU MLP step rate{extra}")
PY

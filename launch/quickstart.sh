#!/usr/bin/env bash
# quickstart.sh - the README's main job, from a fresh Debian machine: installs
# what is missing, builds, imports Fashion-MNIST into HDF5, and trains the MLP
# 784-1024-1024-10 on 2 CPU ranks, printing test accuracy.
# Environment: RT_EPOCHS (default 10), RT_BUILD_DIR (default build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. launch/build_for_demo.sh
src=/usr/share/datasets/fashion-mnist
mkdir -p data-cache
[ -f data-cache/fashion-train.h5 ] ||
  "$rt" data import-idx --images $src/train-images-idx3-ubyte.gz \
    --labels $src/train-labels-idx1-ubyte.gz --out data-cache/fashion-train.h5
[ -f data-cache/fashion-test.h5 ] ||
  "$rt" data import-idx --images $src/t10k-images-idx3-ubyte.gz \
    --labels $src/t10k-labels-idx1-ubyte.gz --out data-cache/fashion-test.h5
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# ringtrain launch builds and prints the mpirun command (2 ranks on this
# host, each with cores/2 BLAS threads) and runs it.
"$rt" launch -np 2 -- train --model mlp:784,1024,1024,10 \
  --data data-cache/fashion-train.h5 --eval data-cache/fashion-test.h5 \
  --batch 128 --epochs "${RT_EPOCHS:-10}" --optimizer adamw --lr 1e-3 \
  --schedule cosine --warmup 200 --log-every 100 --metrics data-cache/metrics.jsonl

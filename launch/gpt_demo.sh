#!/usr/bin/env bash
# gpt_demo.sh - the README's language-model demo, from a fresh Debian
# machine: installs what is missing, builds, imports the `fortunes` corpus
# (plain-text English) as byte-level tokens with a 5 % validation split,
# trains a small GPT (4 layers, dim 128, 4 heads, context 128) on 2 CPU
# ranks, evaluates it, and samples text from it.
# Environment: RT_STEPS (default 2000; about 10 minutes on 2 cores),
# RT_BUILD_DIR (default build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. launch/build_for_demo.sh
mkdir -p data-cache
[ -f data-cache/fortunes-train.h5 ] && [ -f data-cache/fortunes-val.h5 ] ||
  bash data/import_fortunes.sh data-cache "$rt"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
model=gpt:layers=4,dim=128,heads=4,ctx=128
rm -rf data-cache/gpt-ckpt
"$rt" launch -np 2 -- train --model "$model" \
  --data data-cache/fortunes-train.h5 --eval data-cache/fortunes-val.h5 \
  --batch 8 --steps "${RT_STEPS:-2000}" --optimizer adamw --lr 1e-3 --weight-decay 0.1 \
  --schedule cosine --warmup 100 --grad-clip 1.0 --log-every 100 --eval-every 500 \
  --ckpt-dir data-cache/gpt-ckpt --ckpt-every 500 --export-params data-cache/gpt.h5 \
  --metrics data-cache/gpt-metrics.jsonl
"$rt" eval --ckpt data-cache/gpt.h5 --data data-cache/fortunes-val.h5
echo "--- sample (temperature 0.8, top-k 40):"
"$rt" sample --ckpt data-cache/gpt.h5 --prompt "The " --tokens 400 \
  --temperature 0.8 --top-k 40 --seed 1

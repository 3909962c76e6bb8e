#!/usr/bin/env bash
# gpt_learning.sh - the GPT learning benchmark: ringtrain and PyTorch train
# the same byte-level GPT-2 on the `fortunes` corpus with the same recipe,
# the same initial parameters and the same batches, in one run; then both
# validation losses, their difference, and a text sample from ringtrain's
# model with the fraction of its words that are English words.
#
#  1. data: bash data/import_fortunes.sh (fortunes-train.h5 and
#     fortunes-val.h5, the last 5 % of the bytes), unless already there.
#  2. initial parameters: BUILD/tests/trainer/trainer_driver init --spec S
#     --seed N (the draw `ringtrain train --seed N` makes, packed float32 in
#     ringtrain's parameter order).
#  3. ringtrain: mpirun -np 2 ringtrain train (1 thread per rank), default
#     gpt:layers=4,dim=128,heads=4,ctx=128, batch 8 per rank (global 16),
#     2000 steps, AdamW lr 1e-3, weight decay 0.1, warmup 100, cosine, grad
#     clip 1.0, seed 0, the shuffled sampler; then `ringtrain eval --json` on
#     fortunes-val.h5 (nats per token = nats per byte here) and `ringtrain
#     sample` (300 bytes, temperature 0.8, top-k 40, seed 1).
#  4. PyTorch (bench/gpt_learning_torch.py train): tests/trainer/
#     gpt_reference.GPT in float32 from the same initial parameters, each
#     step on the same 16 windows as ringtrain's global step (the sampler
#     re-implemented from docs/FORMATS.md, its permutation checked against
#     the build's tests/data/sampler_dump), the same recipe
#     (docs/TRAINING.md); 2 threads, with OPENBLAS_CORETYPE set to the
#     kernels ringtrain picked (faster; changes only rounding). Its
#     validation loss computed as `ringtrain eval` computes it; and PyTorch's
#     loss of ringtrain's exported parameters, as a check of the evaluation.
#  5. report: both training-loss curves side by side, both validation losses
#     and the difference (target |diff| <= 0.03 nats/byte), the sample, and
#     how many of its words are in /usr/share/dict/words (when it exists) and
#     in the training corpus's own vocabulary. The last line is JSON.
#
# Everything goes to the output directory (--out; kept): ringtrain.log,
# ringtrain.jsonl, ringtrain.h5 (exported parameters), torch.jsonl, *.json,
# sample.txt, report.txt. About 25-45 minutes on 2 cores for 2000 steps
# (ringtrain ~5 min, PyTorch the rest).
set -euo pipefail
me=gpt_learning.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

usage() {
  cat <<EOF
usage: bench/$me [options]

ringtrain against PyTorch on the fortunes corpus: same GPT, recipe, initial
parameters and batches; both validation losses and a text sample.

options:
  --build DIR      ringtrain build directory, with its tests (default
                   \$RT_BUILD_DIR or build, relative to the current directory
                   or else the repository)
  --steps N        training steps (default \$RT_STEPS or 2000)
  --out DIR        output directory (default: a new directory under \${TMPDIR:-/tmp})
  --data-dir DIR   where fortunes-train.h5 / fortunes-val.h5 are, imported
                   there when missing (default \$RT_DATA_DIR or data-cache in
                   the repository)
  --model SPEC     gpt spec (gpt:layers=4,dim=128,heads=4,ctx=128)
  --np N           ringtrain ranks (2)
  --batch N        windows per rank per step (8)
  --seed N         initial parameters and sample order (0)
  --log-every N    metrics line every N steps, both sides (10)
  --help           show this help and exit

environment: RT_BUILD_DIR, RT_STEPS, RT_DATA_DIR, RT_PYTHON (python with
torch, numpy, h5py; default /usr/bin/python3), MPIEXEC (default mpirun),
RT_FORTUNES_DIR (see data/import_fortunes.sh).
EOF
}

build=${RT_BUILD_DIR:-build}
steps=${RT_STEPS:-2000}
out=""
data_dir=${RT_DATA_DIR:-$root/data-cache}
model=gpt:layers=4,dim=128,heads=4,ctx=128
np_=2; batch=8; seed=0; log_every=10
# the recipe, fixed
lr=1e-3; wd=0.1; warmup=100; schedule=cosine; clip=1.0
prompt="The "; sample_tokens=300; temperature=0.8; top_k=40; sample_seed=1

while (($#)); do
  case $1 in
    --help|-h) usage; exit 0;;
    --build|--steps|--out|--data-dir|--model|--np|--batch|--seed|--log-every)
      [ $# -ge 2 ] || { echo "$me: $1 needs a value (see --help)" >&2; exit 2; }
      case $1 in
        --build) build=$2;; --steps) steps=$2;; --out) out=$2;; --data-dir) data_dir=$2;;
        --model) model=$2;; --np) np_=$2;; --batch) batch=$2;; --seed) seed=$2;;
        --log-every) log_every=$2;;
      esac
      shift 2;;
    *) echo "$me: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done
for v in steps np_ batch log_every; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$me: --${v%_} must be a positive integer, got '${!v}'" >&2; exit 2; }
done
[[ $seed =~ ^[0-9]+$ ]] || { echo "$me: --seed must be a non-negative integer, got '$seed'" >&2; exit 2; }
[[ $model == gpt:* ]] || { echo "$me: --model must be a gpt: spec, got '$model'" >&2; exit 2; }

abspath() {  # a directory given relative: to the current directory if it is there, else the repository
  case $1 in
    /*) echo "$1";;
    *) if [ -d "$1" ]; then (cd "$1" && pwd); else echo "$root/$1"; fi;;
  esac
}
build=$(abspath "$build")
rt=$build/launch/ringtrain
driver=$build/tests/trainer/trainer_driver
dump=$build/tests/data/sampler_dump
[ -x "$rt" ] || { echo "$me: no ringtrain at $rt: build first (cmake --build DIR) or give --build DIR" >&2; exit 2; }
[ -x "$driver" ] || { echo "$me: no $driver: build the tests too (the default build does)" >&2; exit 2; }
[ -x "$dump" ] || { echo "$me: note: no $dump; the sampler's permutation is not cross-checked" >&2; dump=""; }
py=${RT_PYTHON:-/usr/bin/python3}
command -v "$py" >/dev/null || py=python3
"$py" -c "import torch, numpy, h5py" 2>/dev/null ||
  { echo "$me: $py cannot import torch, numpy and h5py (RT_PYTHON names another python)" >&2; exit 2; }
mpiexec=${MPIEXEC:-mpirun}
command -v "$mpiexec" >/dev/null || { echo "$me: no $mpiexec (MPIEXEC names the MPI launcher)" >&2; exit 2; }
helper=$here/gpt_learning_torch.py

data_dir=$(abspath "$data_dir")
train=$data_dir/fortunes-train.h5
val=$data_dir/fortunes-val.h5
if [ ! -f "$train" ] || [ ! -f "$val" ]; then
  bash "$root/data/import_fortunes.sh" "$data_dir" "$rt"
fi
if [ -z "$out" ]; then
  out=$(mktemp -d "${TMPDIR:-/tmp}/gpt_learning.XXXXXX")
else
  mkdir -p "$out"; out=$(cd "$out" && pwd)
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
{
  echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%F %H:%M') UTC; load $(load)"
  echo "# model $model on $(basename "$train"), $np_ ranks x batch $batch, $steps steps, adamw lr $lr," \
    "weight decay $wd, warmup $warmup, $schedule, grad clip $clip, seed $seed"
  echo "# output: $out"
} | tee "$out/header.txt"

# 2. the initial parameters
mkdir -p "$out/init"
"$driver" init --spec "$model" --seed "$seed" --dir "$out/init"

# 3. ringtrain
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
t0=$(date +%s)
rm -f "$out/ringtrain.jsonl"
"$mpiexec" -np "$np_" --oversubscribe --bind-to none "$rt" train --model "$model" --data "$train" \
  --batch "$batch" --steps "$steps" --optimizer adamw --lr "$lr" --weight-decay "$wd" \
  --warmup "$warmup" --schedule "$schedule" --grad-clip "$clip" --seed "$seed" --device cpu \
  --log-every "$log_every" --metrics "$out/ringtrain.jsonl" --export-params "$out/ringtrain.h5" \
  2>&1 | tee "$out/ringtrain.log" | awk -v every=$((log_every * 10)) \
    '!/^step /{print; next} {split($2, a, "/"); if (a[1] % every == 0 || a[1] == a[2]) print}'
echo "# ringtrain: $(($(date +%s) - t0)) s; load $(load)"
core=$(sed -n 's/^train .*| blas \([A-Za-z0-9_]*\)$/\1/p' "$out/ringtrain.log" | head -n1)
"$rt" eval --ckpt "$out/ringtrain.h5" --data "$val" --json >"$out/ringtrain-eval.json"
"$rt" sample --ckpt "$out/ringtrain.h5" --prompt "$prompt" --tokens "$sample_tokens" \
  --temperature "$temperature" --top-k "$top_k" --seed "$sample_seed" >"$out/sample.txt"

# 4. PyTorch
t0=$(date +%s)
echo "# PyTorch: same init, batches and recipe; 2 threads, OPENBLAS_CORETYPE=${core:-as installed}"
if [ -n "$core" ]; then export OPENBLAS_CORETYPE=$core; fi
dump_arg=()
[ -n "$dump" ] && dump_arg=(--sampler-dump "$dump")
"$py" "$helper" train --spec "$model" --init "$out/init/params" --data "$train" --val "$val" \
  --world "$np_" --batch "$batch" --steps "$steps" --lr "$lr" --warmup "$warmup" \
  --schedule "$schedule" --grad-clip "$clip" --weight-decay "$wd" --seed "$seed" --threads 2 \
  --log-every "$log_every" --metrics "$out/torch.jsonl" "${dump_arg[@]}" >"$out/torch-eval.json"
echo "# PyTorch: $(($(date +%s) - t0)) s; load $(load)"
"$py" "$helper" eval --params "$out/ringtrain.h5" --data "$val" >"$out/cross-eval.json"

"$py" - "$out/ringtrain.jsonl" "$out/torch-eval.json" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
end = [r for r in ours if "train_seconds" in r][-1]
rate = [r["tokens_per_s"] for r in ours if "tokens_per_s" in r]
t = json.load(open(sys.argv[2]))
print("# training time: ringtrain %.0f s (%.0f tokens/s, median of the logged intervals), "
      "PyTorch %.0f s (%.0f tokens/s)" % (end["train_seconds"], sorted(rate)[len(rate) // 2],
                                          t["train_seconds"], t["tokens_per_s"]))
PY

# 5. report
"$py" "$helper" report --ours "$out/ringtrain.jsonl" --torch "$out/torch.jsonl" \
  --ours-eval "$out/ringtrain-eval.json" --torch-eval "$out/torch-eval.json" \
  --cross-eval "$out/cross-eval.json" --sample "$out/sample.txt" --prompt "$prompt" \
  --vocab-from "$train" | tee "$out/report.txt"

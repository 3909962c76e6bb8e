#!/usr/bin/env bash
# gpt_throughput.sh - training throughput of ringtrain's GPT on the CPU
# against PyTorch, in one run, on this machine.
#
# The same workload on both sides: a GPT-2 (default layers 4, dim 128,
# heads 4, ctx 128, vocab 256), batch 8, fp32, AdamW, one process with the
# same number of threads (default 2):
#   ringtrain  `ringtrain train --device cpu` (1 rank) on a stream of random
#              tokens, tokens/s and MFU from its --metrics file: the median
#              of the logged intervals, the first (warm-up) interval left out;
#   PyTorch    bench/torch_peer.py gpt (the median of its timed steps), as
#              installed and again with OPENBLAS_CORETYPE set to the kernels
#              ringtrain picks (trainer/ops/cpu_env.h); the ratio is taken
#              against the faster of the two, as bench/train_throughput.sh
#              does.
# Several rounds alternate the three (the machine may be shared, so the load
# changes between runs); the figures are the medians over the rounds.
#
# MFU: both sides use ringtrain's formula and ringtrain's peak. The model
# FLOPs per token are gpt_train_flops (trainer/model/gpt.c): 6 x parameters
# (the position embedding left out, the tied head counted once) + 12*L*T*D.
# The peak is the float32 sgemm peak ringtrain measures when its session
# starts (trainer/ops/cpu_peak.c); it is not printed, so it is recovered from
# the metrics: peak = tokens_per_s x FLOPs per token / mfu (one rank). The
# peer's MFU is its tokens/s x the same FLOPs per token / the median of the
# peaks ringtrain measured in this run.
#
# Prints the machine, a table, and one JSON line (the last line).
set -euo pipefail
me=gpt_throughput.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

usage() {
  cat <<EOF
usage: bench/$me [options]

ringtrain's GPT training throughput (1 rank) against PyTorch on the CPU,
same model, batch, threads, fp32 and AdamW, in the same run; medians of
tokens/s and MFU and the ratio ringtrain / PyTorch.

options:
  --build DIR     ringtrain build directory (default \$RT_BUILD_DIR or build,
                  relative to the current directory or else the repository)
  --layers N      transformer blocks (4)
  --dim N         model width (128)
  --heads N       attention heads (4)
  --ctx N         context length (128)
  --vocab N       vocabulary size (256)
  --batch N       windows per step (8)
  --threads N     threads of both (2)
  --rounds N      rounds, each running ringtrain and both PyTorch runs (3)
  --steps N       ringtrain steps per round, logged every 5 (40)
  --iters N       PyTorch timed steps per run, after 2 warm-up steps (10)
  --help          show this help and exit

environment: RT_BUILD_DIR (build directory), RT_TORCH_PEER (another
torch_peer.py; default bench/torch_peer.py), RT_PYTHON (the python with
torch, default /usr/bin/python3).
EOF
}

build=${RT_BUILD_DIR:-build}
layers=4; dim=128; heads=4; ctx=128; vocab=256; batch=8; threads=2
rounds=3; steps=40; iters=10; log_every=5
while (($#)); do
  case $1 in
    --help|-h) usage; exit 0;;
    --build|--layers|--dim|--heads|--ctx|--vocab|--batch|--threads|--rounds|--steps|--iters)
      [ $# -ge 2 ] || { echo "$me: $1 needs a value (see --help)" >&2; exit 2; }
      case $1 in
        --build) build=$2;; --layers) layers=$2;; --dim) dim=$2;; --heads) heads=$2;;
        --ctx) ctx=$2;; --vocab) vocab=$2;; --batch) batch=$2;; --threads) threads=$2;;
        --rounds) rounds=$2;; --steps) steps=$2;; --iters) iters=$2;;
      esac
      shift 2;;
    *) echo "$me: unknown argument '$1' (see --help)" >&2; exit 2;;
  esac
done
for v in layers dim heads ctx vocab batch threads rounds steps iters; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$me: --$v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
((steps >= 2 * log_every)) || { echo "$me: --steps must be at least $((2 * log_every))" >&2; exit 2; }
((vocab <= 65536)) || { echo "$me: --vocab must be at most 65536" >&2; exit 2; }
((dim % heads == 0)) || { echo "$me: --dim ($dim) must divide by --heads ($heads)" >&2; exit 2; }

case $build in
  /*) ;;
  *) if [ -d "$build" ]; then build=$(cd "$build" && pwd); else build=$root/$build; fi;;
esac
rt=$build/launch/ringtrain
[ -x "$rt" ] || { echo "$me: no ringtrain at $rt: build first (cmake --build $build) or give --build DIR" >&2; exit 2; }
peer=${RT_TORCH_PEER:-$here/torch_peer.py}
[ -f "$peer" ] || { echo "$me: no PyTorch peer at $peer (RT_TORCH_PEER names one)" >&2; exit 2; }
py=${RT_PYTHON:-/usr/bin/python3}
command -v "$py" >/dev/null || py=python3
"$py" -c "import torch, numpy" 2>/dev/null ||
  { echo "$me: $py cannot import torch and numpy (RT_PYTHON names another python)" >&2; exit 2; }

spec="gpt:layers=$layers,dim=$dim,heads=$heads,ctx=$ctx,vocab=$vocab"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
results=$tmp/results.jsonl
: >"$results"

# Random tokens, enough for one epoch of the ringtrain run (vocab <= 256:
# stored as uint8 by the importer).
"$py" - "$tmp/tokens.bin" "$(((steps * batch + 2) * ctx + 1))" "$vocab" <<'PY'
import sys, numpy as np
path, n, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
np.random.default_rng(1).integers(0, vocab, n).astype("<u2").tofile(path)
PY
"$rt" data import-tokens --input "$tmp/tokens.bin" --format bin --vocab "$vocab" \
  --out "$tmp/tokens.h5" >/dev/null

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%F %H:%M') UTC"
echo "# model: $spec, batch $batch, $threads threads, fp32, AdamW; $rounds rounds"
echo "# ringtrain: $rt train --device cpu --batch $batch --threads $threads --steps $steps --log-every $log_every"
echo "# pytorch:   $py $peer gpt ... --batch $batch --threads $threads --optimizer adamw --iters $iters"
load_before=$(load)
echo "# load before: $load_before"

core=""
run_ringtrain() {
  local r=$1 m=$tmp/metrics.$1.jsonl out
  out=$("$rt" train --model "$spec" --data "$tmp/tokens.h5" --batch "$batch" --steps "$steps" \
    --threads "$threads" --optimizer adamw --lr 1e-3 --log-every "$log_every" --device cpu \
    --metrics "$m" 2>&1) || { echo "$out" >&2; echo "$me: ringtrain train failed" >&2; exit 1; }
  # the start line ends with "blas <kernels>"
  core=$(sed -n 's/^train .*| blas \([A-Za-z0-9_]*\)$/\1/p' <<<"$out" | head -n1)
  "$py" - "$m" "$r" >>"$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l][1:]  # skip the warm-up interval
print(json.dumps({"who": "ringtrain", "round": int(sys.argv[2]),
                  "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows),
                  "mfu": statistics.median(r["mfu"] for r in rows) if all("mfu" in r for r in rows) else None,
                  # peak / FLOPs per token = tokens_per_s / mfu, per logged interval
                  "peak_per_flop": statistics.median(r["tokens_per_s"] / r["mfu"] for r in rows)
                  if all(r.get("mfu") for r in rows) else None}))
PY
}
run_peer() {
  local r=$1 who=$2 line
  line=$(if [ "$who" = pytorch+coretype ]; then export OPENBLAS_CORETYPE=$core; fi
         "$py" "$peer" gpt --layers "$layers" --dim "$dim" --heads "$heads" --ctx "$ctx" \
           --vocab "$vocab" --batch "$batch" --threads "$threads" --optimizer adamw --iters "$iters" |
           grep '^{') || { echo "$me: the PyTorch peer failed ($who)" >&2; exit 1; }
  "$py" -c 'import json, sys; d = json.loads(sys.argv[1]); d.update(who=sys.argv[2], round=int(sys.argv[3]));
print(json.dumps(d))' "$line" "$who" "$r" >>"$results"
}

for ((r = 1; r <= rounds; r++)); do
  # alternate which side goes first; ringtrain runs before the first
  # coretype run, which needs the kernels it picked
  if ((r % 2 == 1)); then
    run_ringtrain $r; run_peer $r pytorch; run_peer $r pytorch+coretype
  else
    run_peer $r pytorch; run_peer $r pytorch+coretype; run_ringtrain $r
  fi
  echo "# round $r/$rounds done (load $(load))" >&2
done
load_after=$(load)
echo "# load after: $load_after"

"$py" - "$results" "$spec" "$layers" "$dim" "$ctx" "$vocab" "$batch" "$threads" "$rounds" \
  "$core" "$load_before" "$load_after" <<'PY'
import json, statistics, sys, time
path, spec = sys.argv[1], sys.argv[2]
L, D, T, V, B, threads, rounds = (int(x) for x in sys.argv[3:10])
core, load_before, load_after = sys.argv[10:13]
rows = [json.loads(l) for l in open(path)]
# gpt_train_flops (trainer/model/gpt.c): 6 x params (no wpe; tied head once) + 12 L T D
params = V * D + L * (12 * D * D + 13 * D) + 2 * D
flops = 6.0 * params + 12.0 * L * T * D
med = lambda who, key: statistics.median(r[key] for r in rows if r["who"] == who)
def col(who, key):
    return [r[key] for r in rows if r["who"] == who]
ours, p1, p2 = med("ringtrain", "tokens_per_s"), med("pytorch", "tokens_per_s"), med("pytorch+coretype", "tokens_per_s")
peaks = [flops * x for x in col("ringtrain", "peak_per_flop") if x]
peak = statistics.median(peaks) if peaks else None
ours_mfu = med("ringtrain", "mfu") if peaks else None
mfu = lambda tps: tps * flops / peak if peak else None
best = max(p1, p2)
pct = lambda x: f"{100 * x:.1f}%" if x is not None else "n/a"
print(f"{'':36s} {'tokens/s (median)':>18s} {'MFU':>7s}   per round")
print(f"{'ringtrain':36s} {ours:18.0f} {pct(ours_mfu):>7s}   " + ", ".join(f"{x:.0f}" for x in col("ringtrain", "tokens_per_s")))
print(f"{'PyTorch as installed':36s} {p1:18.0f} {pct(mfu(p1)):>7s}   " + ", ".join(f"{x:.0f}" for x in col("pytorch", "tokens_per_s")))
print(f"{'PyTorch OPENBLAS_CORETYPE=' + core:36s} {p2:18.0f} {pct(mfu(p2)):>7s}   " + ", ".join(f"{x:.0f}" for x in col("pytorch+coretype", "tokens_per_s")))
print(f"FLOPs per token {flops:.4g}; measured sgemm peak (ringtrain, median of rounds) "
      + (f"{peak / 1e9:.1f} GFLOP/s (rounds: " + ", ".join(f"{p / 1e9:.1f}" for p in peaks) + ")" if peak else "n/a"))
print(f"ratio ringtrain / PyTorch: {ours / best:.2f}x against the faster PyTorch, "
      f"{ours / p1:.2f}x against PyTorch as installed (target >= 2)")
print(json.dumps({
    "bench": "gpt_throughput", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "model": spec, "batch": B, "threads": threads, "rounds": rounds, "blas_core": core,
    "load_before": load_before, "load_after": load_after,
    "ringtrain_tokens_per_s": round(ours, 1), "pytorch_tokens_per_s": round(p1, 1),
    "pytorch_coretype_tokens_per_s": round(p2, 1),
    "ratio": round(ours / best, 3), "ratio_vs_installed": round(ours / p1, 3),
    "ringtrain_mfu": ours_mfu, "pytorch_mfu": mfu(p1), "pytorch_coretype_mfu": mfu(p2),
    "flops_per_token": flops, "peak_flops": peak}))
PY

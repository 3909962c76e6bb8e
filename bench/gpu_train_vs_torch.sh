#!/usr/bin/env bash
# bench/gpu_train_vs_torch.sh - samples/s of our GPU training step against
# PyTorch on the same GPU in the same run: MLP 784-1024-1024-10, AdamW,
# batch 512 and 4096, full fp32 (TF32 off on both sides; PyTorch's default).
#
#   bash bench/gpu_train_vs_torch.sh [BUILD_DIR]        (default build-gpu)
#
# Ours: BUILD_DIR/tests/gpu/bench_gpu_train (graph replay; also --eager at
# 512), "pipelined" = steady state with a result read every N steps as the
# trainer runs, "synced" = waiting for every step. PyTorch: bench/torch_peer.py
# (the project's PyTorch peer) eager, and with --compile unless
# RT_BENCH_COMPILE=0; its per-step time waits for each step (events around
# one step, median of 100). The peer's python is RT_TORCH_PYTHON or python3;
# without a CUDA PyTorch the peer columns say "unavailable" and ours still
# print. Ends with lines "RESULT batch=B ours=S eager=S compile=S
# ratio_eager=R ratio_compile=R" for tests/gpu/run.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build-gpu}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
ours_bin="$build/tests/gpu/bench_gpu_train"
py=${RT_TORCH_PYTHON:-python3}
compile=${RT_BENCH_COMPILE:-1}
sizes=784,1024,1024,10

if [ ! -x "$ours_bin" ]; then
  echo "bench_gpu_train not built: $ours_bin" >&2
  exit 1
fi
peer_ok=0
if timeout 120 "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  peer_ok=1
  echo "peer: $("$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())')"
else
  echo "peer unavailable: $py has no CUDA PyTorch"
fi

json_field() { # json-line field -> value ("" when absent)
  "$py" -c 'import json,sys
try:
    print(json.loads(sys.argv[1]).get(sys.argv[2], ""))
except Exception:
    print("")' "$1" "$2" 2>/dev/null || python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

declare -a results=()
for batch in 512 4096; do
  echo "---- batch $batch ----"
  out=$(timeout 120 "$ours_bin" --sizes "$sizes" --batch "$batch" --optimizer adamw --iters 200 2>&1)
  rc=$?
  echo "$out" | grep -v '^{'
  ours_json=$(echo "$out" | grep '^{' | tail -1)
  ours=""; ours_sync=""
  if [ "$rc" = 0 ] && [ -n "$ours_json" ]; then
    ours=$(json_field "$ours_json" samples_per_s)
    ours_sync=$(json_field "$ours_json" synced_samples_per_s)
  else
    echo "ours failed (rc=$rc)"
  fi
  if [ "$batch" = 512 ]; then
    timeout 120 "$ours_bin" --sizes "$sizes" --batch "$batch" --optimizer adamw --iters 200 --eager 2>&1 | grep -v '^{'
    timeout 120 "$ours_bin" --sizes "$sizes" --batch "$batch" --optimizer adamw --iters 200 --tf32 2>&1 | grep -v '^{'
  fi
  eager=""; comp=""
  if [ "$peer_ok" = 1 ]; then
    pe=$(timeout 150 "$py" "$root/bench/torch_peer.py" mlp --sizes "$sizes" --batch "$batch" \
         --device cuda --optimizer adamw 2>&1)
    echo "torch eager:   $(echo "$pe" | tail -1)"
    eager=$(json_field "$(echo "$pe" | grep '^{' | tail -1)" samples_per_s)
    if [ "$compile" = 1 ]; then
      pc=$(timeout 240 "$py" "$root/bench/torch_peer.py" mlp --sizes "$sizes" --batch "$batch" \
           --device cuda --optimizer adamw --compile 2>&1)
      echo "torch compile: $(echo "$pc" | tail -1)"
      comp=$(json_field "$(echo "$pc" | grep '^{' | tail -1)" samples_per_s)
    fi
  fi
  # one decimal, like ours (the peer prints full float precision)
  [ -n "$eager" ] && eager=$(awk -v x="$eager" 'BEGIN { printf "%.1f", x }')
  [ -n "$comp" ] && comp=$(awk -v x="$comp" 'BEGIN { printf "%.1f", x }')
  results+=("$(printf '%-6s %16s %14s %14s %14s %11s %13s %13s' "$batch" "${ours:-fail}" \
    "${ours_sync:-fail}" "${eager:-unavailable}" "${comp:-unavailable}" \
    "$(ratio "$ours" "$eager")" "$(ratio "$ours" "$comp")" "$(ratio "$ours_sync" "$eager")")")
  echo "RESULT batch=$batch ours=${ours:-fail} ours_synced=${ours_sync:-fail} eager=${eager:-unavailable} compile=${comp:-unavailable} ratio_eager=$(ratio "$ours" "$eager") ratio_compile=$(ratio "$ours" "$comp") ratio_synced_eager=$(ratio "$ours_sync" "$eager")"
done

echo
echo "MLP $sizes AdamW fp32, samples/s on $(nvidia-smi -L 2>/dev/null | head -1 | sed 's/ (UUID.*//')"
printf '%-6s %16s %14s %14s %14s %11s %13s %13s\n' batch "ours pipelined" "ours synced" "torch eager" \
  "torch compile" "ours/eager" "ours/compile" "synced/eager"
for r in "${results[@]}"; do echo "$r"; done
echo "targets: ours/eager >= 2.0 at batch 512, >= 1.0 at 4096"

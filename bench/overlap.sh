#!/usr/bin/env bash
# overlap.sh - how much of the gradient exchange hides behind backward: the
# MLP 784-2048-2048-10, batch 256 per rank, AdamW, 1 thread per rank, on 2
# ranks of this host (shared memory) and on 2 network namespaces of the
# test cluster (one rank each, TCP over veth; cluster/netns-up.sh, needs
# root), with the gradient sync's overlap off, between layers, and on the
# progress thread. Per setting, the medians over rounds of: step time,
# samples/s, and the exposed communication per step (the metrics'
# comm_exposed_ms: the time the training thread waited on communication);
# hidden = 1 - exposed / exposed with overlap off. PyTorch DDP (gloo,
# bench/ddp_peer.py, the same MLP and batch) on the same 2 ranks of this
# host is the peer. Rounds alternate the settings, so that a change of
# load on this shared machine hits them alike.
# Usage: bench/overlap.sh BUILD_DIR [--steps N] [--rounds N] [--no-netns] [--sizes L]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
build=${1:?usage: overlap.sh BUILD_DIR [--steps N] [--rounds N] [--no-netns]}
shift
steps=30; rounds=3; netns=1; sizes=784,2048,2048,10; batch=256
while (($#)); do
  case $1 in
    --steps) steps=$2; shift 2;;
    --rounds) rounds=$2; shift 2;;
    --no-netns) netns=0; shift;;
    --sizes) sizes=$2; shift 2;;
    *) echo "overlap.sh: unknown argument $1" >&2; exit 2;;
  esac
done
rt=$build/launch/ringtrain
[ -x "$rt" ] || { echo "overlap.sh: no $rt (build first)" >&2; exit 2; }
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d /tmp/rt_overlap.XXXXXX)
id=7
cleanup() { [ "$netns" = 1 ] && bash "$src/cluster/netns-down.sh" "$id" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT
features=${sizes%%,*}; classes=${sizes##*,}
$py - "$work/data.h5" "$features" "$classes" <<'PY'
import sys
import h5py, numpy as np
rng = np.random.default_rng(0)
n, f, c = 8192, int(sys.argv[2]), int(sys.argv[3])
with h5py.File(sys.argv[1], "w") as h:
    h.attrs["format"] = "ringtrain-dataset"; h.attrs["format_version"] = 1
    h.attrs["kind"] = "classification"; h.attrs["num_classes"] = c
    h["inputs"] = rng.integers(0, 256, (n, f), dtype=np.uint8)
    h["labels"] = rng.integers(0, c, n, dtype=np.uint8)
PY

places=(host)
mca=()
if [ "$netns" = 1 ]; then
  bash "$src/cluster/netns-down.sh" "$id" >/dev/null 2>&1 || true
  if bash "$src/cluster/netns-up.sh" 2 "$id" >/dev/null; then
    bash "$src/cluster/netns-hostfile.sh" 2 1 "$id" > "$work/hosts"
    mca=(--hostfile "$work/hosts" --mca plm_rsh_agent "$src/cluster/netns-rsh.sh" --mca routed direct
         --mca oob_tcp_if_include "10.77.$id.0/24" --mca btl_tcp_if_include "10.77.$id.0/24"
         --mca btl self,tcp)
    places+=(netns)
  else
    echo "# network namespaces unavailable: this host only" >&2
  fi
fi

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%F %H:%M UTC')"
echo "# mpi: $(mpirun --version 2>&1 | head -1)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# model mlp:$sizes, batch $batch per rank, 2 ranks x 1 thread, AdamW, $steps steps, buckets 4 MiB"
# one run -> one JSON line: place, overlap, the medians of its logged steps
one() {
  local place=$1 ov=$2 m=$work/m_${place}_$ov.jsonl
  local cmd=("$rt" train --model "mlp:$sizes" --data "$work/data.h5" --batch $batch --steps "$steps"
             --threads 1 --device cpu --log-every 2 --overlap "$ov" --metrics "$m")
  if [ "$place" = host ]; then
    timeout 600 mpirun -np 2 --bind-to none "${cmd[@]}" >/dev/null
  else
    timeout 600 mpirun -np 2 "${mca[@]}" "${cmd[@]}" >/dev/null
  fi
  $py - "$m" "$place" "$ov" "$batch" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
rows = rows[len(rows) // 3:]  # the steady state
sps = statistics.median(r["samples_per_s"] for r in rows)
print(json.dumps({"place": sys.argv[2], "overlap": sys.argv[3], "samples_per_s": sps,
                  "step_ms": 2 * int(sys.argv[4]) / sps * 1e3,
                  "exposed_ms": statistics.median(r["comm_exposed_ms"] for r in rows)}))
PY
}
ddp=${RT_DDP_PEER:-$here/ddp_peer.py}
out=$(
  for r in $(seq "$rounds"); do
    for place in "${places[@]}"; do
      for ov in off layers thread; do one "$place" "$ov"; done
    done
    if [ -f "$ddp" ]; then
      $py "$ddp" --np 2 --sizes "$sizes" --batch $batch --threads 1 --steps "$steps" |
        sed 's/^{/{"place": "host", "overlap": "ddp", /'
    fi
  done
)
echo "$out" | sed 's/^/# /'
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$out" | $py -c "$(cat <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
def med(p, o, k):
    return statistics.median(r[k] for r in rows if r["place"] == p and r["overlap"] == o)
print(f"{'where':8s} {'overlap':8s} {'step ms':>8s} {'samples/s':>10s} {'exposed ms':>11s} {'hidden':>7s}")
for p in ("host", "netns"):
    if not any(r["place"] == p for r in rows):
        continue
    off = med(p, "off", "exposed_ms")
    for o in ("off", "layers", "thread"):
        e = med(p, o, "exposed_ms")
        print(f"{p:8s} {o:8s} {med(p, o, 'step_ms'):8.1f} {med(p, o, 'samples_per_s'):10.0f} "
              f"{e:11.1f} {100 * (1 - e / off):6.0f}%")
if any(r["overlap"] == "ddp" for r in rows):
    d = med("host", "ddp", "samples_per_s")
    print(f"{'host':8s} {'ddp':8s} {med('host', 'ddp', 'step_ms'):8.1f} {d:10.0f}")
    best = max(med("host", o, "samples_per_s") for o in ("off", "layers", "thread"))
    print(f"ringtrain / DDP on this host: {med('host', 'thread', 'samples_per_s') / d:.2f}x "
          f"(thread overlap), {best / d:.2f}x (best overlap setting)")
PY
)"

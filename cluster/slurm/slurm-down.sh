#!/usr/bin/env bash
# slurm-down.sh [ID] - stops and removes the Slurm test cluster of
# slurm-up.sh: every process in its node namespaces (slurmd, slurmstepd and
# whatever the jobs started), slurmctld and munged (found by their pid files
# and by the scratch path on their command line), the namespaces and bridge
# (../netns-down.sh), and /run/ringtrain-slurm-rt<ID>/. Safe to run any
# number of times; touches only cluster ID's names. Exits 1 if anything of it
# is still there afterwards (named on stderr).
set -uo pipefail
id=${1:-0}
if ! [[ $id =~ ^[0-9]+$ ]] || (( id > 99 )); then echo "slurm-down: ID must be 0..99" >&2; exit 2; fi
here=$(cd "$(dirname "$0")" && pwd)
pre=rt$id
dir=/run/ringtrain-slurm-$pre

# Processes whose command line names the scratch directory: slurmctld,
# slurmd and munged are started with paths in it. One grep over every
# command line; "[r]" keeps the pattern from matching grep's own.
ours() {
  grep -laE -- "/run/[r]ingtrain-slurm-$pre/" /proc/[0-9]*/cmdline 2>/dev/null |
    sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p'
}

# The nodes first, so that no slurmd or job step outlives the controller.
"$here/../netns-down.sh" "$id" || true
pids=$(ours)
for f in "$dir"/slurmctld.pid "$dir"/slurmd.*.pid "$dir"/munge/munged.pid; do
  [ -f "$f" ] && pids="$pids $(cat "$f" 2>/dev/null)"
done
for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
for _ in $(seq 1 50); do
  alive=""
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
  [ -z "$alive" ] && break
  sleep 0.1
done
for pid in $alive; do kill -KILL "$pid" 2>/dev/null; done
sleep 0.1
rm -rf -- "$dir"

status=0
left=$(ours)
if [ -n "$left" ]; then echo "slurm-down: processes of cluster $id still running: $left" >&2; status=1; fi
if ip netns list 2>/dev/null | awk '{print $1}' | grep -qE "^$pre-h[0-9]+\$"; then
  echo "slurm-down: namespaces $pre-h* still there" >&2; status=1
fi
[ -e "$dir" ] && { echo "slurm-down: $dir still there" >&2; status=1; }
exit $status

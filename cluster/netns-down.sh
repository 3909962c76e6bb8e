#!/usr/bin/env bash
# netns-down.sh [ID] - removes the test cluster made by netns-up.sh: every
# namespace rt<ID>-h<N> (their veths go with them), the bridge rt<ID>-br and
# the hosts' scratch directories /run/ringtrain-netns-rt<ID>/.
# Safe to run any number of times; touches only names of that pattern.
set -uo pipefail
id=${1:-0}
if ! [[ $id =~ ^[0-9]+$ ]] || (( id > 99 )); then echo "netns-down: ID must be 0..99" >&2; exit 2; fi
pre=rt$id
command -v ip >/dev/null || exit 0
status=0
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$pre-(h[0-9]+|probe)\$"); do
  # processes left inside (an orted from a failed test) would keep it alive
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$ns" || status=1
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
              grep -E "^$pre-(br|v[0-9]+)\$"); do
  ip link del "$link" 2>/dev/null || true
done
rm -rf -- "/run/ringtrain-netns-$pre"
if ip link show "$pre-br" >/dev/null 2>&1; then status=1; fi
exit $status

#!/usr/bin/env bash
# test_netns_cluster.sh HELLO [ID] - the network-namespace test cluster: 2
# hosts x 2 slots. `ringtrain launch --hostfile` starts ranks through the
# netns rsh agent, and mpirun runs HELLO (netns_hello) over TCP on the
# bridge: checks placement (by slot), the namespace address of each rank,
# the allreduce sum (closed form),
# and that the namespaces, veths and bridge are gone afterwards - also when
# the run fails. Exit 77 (skipped) when namespaces cannot be made here.
set -u
hello=${1:?usage: test_netns_cluster.sh HELLO [ID]}
id=${2:-1}
src=${RT_SOURCE_DIR:?}
RINGTRAIN=${RINGTRAIN:?}
cl=$src/cluster
work=$(mktemp -d /tmp/rt_netns.XXXXXX)
cleanup() { bash "$cl/netns-down.sh" "$id"; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
bash "$cl/netns-down.sh" "$id" 2>/dev/null # leftovers of a killed run
bash "$cl/netns-up.sh" 2 "$id"
rc=$?
[ $rc = 0 ] || exit $rc # 77: skipped, with the reason printed
bash "$cl/netns-hostfile.sh" 2 2 "$id" > "$work/hosts"

fails=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); return 1; fi; }

# shellcheck disable=SC2054 # self,tcp is one word
mca=(--mca plm_rsh_agent "$cl/netns-rsh.sh" --mca routed direct
     --mca oob_tcp_if_include "10.77.$id.0/24" --mca btl_tcp_if_include "10.77.$id.0/24"
     --mca btl self,tcp)
margs=()
for a in "${mca[@]}"; do margs+=("--mpirun-arg=$a"); done

# 1. ringtrain launch across the namespaces (a command without MPI: version)
t0=$(date +%s%N)
timeout 60 "$RINGTRAIN" launch --hostfile "$work/hosts" "${margs[@]}" -- version \
  >"$work/out1" 2>"$work/err1"
lrc=$?
echo "launch took $(( ($(date +%s%N) - t0) / 1000000 )) ms, exit $lrc"
check "ringtrain launch over the cluster exits 0" test "$lrc" = 0 || cat "$work/err1"
for r in 0 1 2 3; do
  check "launch: rank $r ran (tagged output)" grep -q "^\[[0-9]*,$r\]<stdout>:ringtrain " "$work/out1"
done
check "launch: printed the mpirun command with the agent" \
  grep -q "running: mpirun -np 4 --hostfile $work/hosts .*plm_rsh_agent $cl/netns-rsh.sh" "$work/err1"

# 2. MPI across the namespaces: placement, addresses, allreduce over TCP
t0=$(date +%s%N)
timeout 60 mpirun -np 4 --hostfile "$work/hosts" "${mca[@]}" "$hello" "10.77.$id." \
  >"$work/out" 2>"$work/err"
mrc=$?
echo "mpirun took $(( ($(date +%s%N) - t0) / 1000000 )) ms, exit $mrc"
check "mpirun over the cluster exits 0" test "$mrc" = 0 || cat "$work/err"
for r in 0 1 2 3; do
  host=$(( r / 2 + 1 )); local=$(( r % 2 ))
  check "rank $r on h$host (local $local), sum 10" \
    grep -q "hello rank=$r size=4 local=$local addr=10.77.$id.$host sum=10" "$work/out"
done
cat "$work/out"
trap - EXIT
cleanup
check "namespaces removed" test -z "$(ip netns list | grep -E "^rt$id-")"
check "bridge and veths removed" test -z "$(ip -o link show | grep -E ": rt$id-(br|v[0-9])")"
echo "$fails failed"
[ "$fails" = 0 ]

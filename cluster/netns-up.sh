#!/usr/bin/env bash
# netns-up.sh K [ID] - a local test cluster of K "hosts" for mpirun: Linux
# network namespaces rt<ID>-h1..rt<ID>-hK, each with one veth on the bridge
# rt<ID>-br, addresses 10.77.<ID>.1..K/24 (the bridge is 10.77.<ID>.254 in
# this namespace, where mpirun runs), and a private scratch directory per host
# /run/ringtrain-netns-rt<ID>/h<N> (mode 0700). ID (0-99, default 0) lets separate
# test runs coexist. Nothing is routed or forwarded beyond the bridge: the
# subnet exists only between namespaces this script creates.
# Needs root and iproute2. Exits 77 (CTest "skipped") with the reason when
# namespaces cannot be created, 1 when the names or the subnet are taken.
# Remove everything with: netns-down.sh [ID]
set -euo pipefail
k=${1:?usage: netns-up.sh K [ID]}
id=${2:-0}
if ! [[ $k =~ ^[0-9]+$ ]] || (( k < 1 || k > 250 )); then echo "netns-up: K must be 1..250" >&2; exit 2; fi
if ! [[ $id =~ ^[0-9]+$ ]] || (( id > 99 )); then echo "netns-up: ID must be 0..99" >&2; exit 2; fi
pre=rt$id
br=$pre-br
net=10.77.$id

skip() { echo "netns-up: SKIP: $*" >&2; exit 77; }
command -v ip >/dev/null || skip "iproute2 (ip) is not installed"
[ "$(id -u)" = 0 ] || skip "creating network namespaces needs root"
if ! ip netns add "$pre-probe" 2>/dev/null; then
  skip "cannot create a network namespace here (no CAP_SYS_ADMIN or no netns support)"
fi
ip netns del "$pre-probe"

if ip link show "$br" >/dev/null 2>&1; then
  echo "netns-up: bridge $br exists: cluster $id is up or in use (netns-down.sh $id removes it)" >&2
  exit 1
fi
if ip -4 route show | grep -q "^$net\.0/24 "; then
  echo "netns-up: $net.0/24 is already routed on this host: refusing to shadow it" >&2
  exit 1
fi

# Undo a half-built cluster if any step fails.
trap 'echo "netns-up: failed; removing what was created" >&2; "$(dirname "$0")/netns-down.sh" "$id" >/dev/null 2>&1 || true' ERR

# Per-host scratch for Open MPI's session directories: the namespaces share
# the host name and /tmp, so daemons of different "hosts" would race to
# create the same /tmp/ompi.<hostname>.<uid>/... (netns-rsh.sh points each
# daemon at its own directory). Under /run: writable by root only.
scratch=/run/ringtrain-netns-$pre
rm -rf "$scratch"
mkdir -m 0700 "$scratch"
ip link add "$br" type bridge
ip addr add "$net.254/24" dev "$br"
ip link set "$br" up
for n in $(seq 1 "$k"); do
  ns=$pre-h$n
  ip netns add "$ns"
  ip link add "$pre-v$n" type veth peer name "$pre-p$n"
  ip link set "$pre-p$n" netns "$ns"
  ip -n "$ns" addr add "$net.$n/24" dev "$pre-p$n"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$pre-p$n" up
  ip link set "$pre-v$n" master "$br" up
  mkdir -m 0700 "$scratch/h$n"
done
trap - ERR
echo "netns-up: cluster $id: $k hosts $pre-h1..$pre-h$k on $br, $net.0/24" >&2

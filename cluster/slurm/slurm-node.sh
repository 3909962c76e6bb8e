#!/usr/bin/env bash
# slurm-node.sh ID N - starts the slurmd of node rt<ID>-h<N> of the Slurm
# test cluster (slurm-up.sh): in that host's network namespace, under its own
# host name (a UTS namespace of its own), with the cluster's slurm.conf.
# slurm-up.sh starts every node with it; a test brings back a node it killed
# with it (the controller returns the node to service when it registers).
set -euo pipefail
id=${1:?usage: slurm-node.sh ID N}
n=${2:?usage: slurm-node.sh ID N}
if ! [[ $id =~ ^[0-9]+$ ]] || (( id > 99 )); then echo "slurm-node: ID must be 0..99" >&2; exit 2; fi
if ! [[ $n =~ ^[0-9]+$ ]]; then echo "slurm-node: N must be a number" >&2; exit 2; fi
host=rt$id-h$n
dir=/run/ringtrain-slurm-rt$id
[ -f "$dir/slurm.conf" ] || { echo "slurm-node: no cluster $id ($dir/slurm.conf; run slurm-up.sh)" >&2; exit 1; }
[ -e "/run/netns/$host" ] || { echo "slurm-node: no namespace $host" >&2; exit 1; }
mkdir -p -m 0700 "$dir/spool/$host"
# nsenter, not `ip netns exec`: that remounts /sys, which hides the cgroup
# file systems that slurmd's cgroup plugin looks for even with
# proctrack/linuxproc. The node's own host name matters to Open MPI, which
# names its session directory and shared-memory files after it: nodes that
# share /tmp and /dev/shm under one name would collide.
nsenter --net="/run/netns/$host" unshare --uts \
  sh -c 'hostname "$1" && exec slurmd -f "$2" -N "$1"' slurmd "$host" "$dir/slurm.conf"

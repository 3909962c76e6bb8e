#!/usr/bin/env bash
# netns-hostfile.sh K SLOTS [ID] - prints a hostfile for the netns test
# cluster: one line "rt<ID>-h<N> slots=SLOTS" per host.
set -euo pipefail
k=${1:?usage: netns-hostfile.sh K SLOTS [ID]}
slots=${2:?usage: netns-hostfile.sh K SLOTS [ID]}
id=${3:-0}
[[ $k =~ ^[0-9]+$ && $slots =~ ^[0-9]+$ && $id =~ ^[0-9]+$ ]] || { echo "netns-hostfile: numbers only" >&2; exit 2; }
echo "# netns test cluster $id: $k hosts x $slots slots (cluster/netns-up.sh $k $id)"
for n in $(seq 1 "$k"); do echo "rt$id-h$n slots=$slots"; done

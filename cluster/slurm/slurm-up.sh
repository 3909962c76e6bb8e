#!/usr/bin/env bash
# slurm-up.sh K [ID] - a real Slurm cluster of K compute nodes on this
# machine, for tests: the network-namespace hosts of ../netns-up.sh
# (rt<ID>-h1..K at 10.77.<ID>.1..K) each run one slurmd under its own host
# name (a UTS namespace), and this namespace runs munged and slurmctld on the
# bridge address 10.77.<ID>.254. Everything (munge key and socket, slurm.conf,
# state, spool, logs, pid files) lives in /run/ringtrain-slurm-rt<ID>/ (mode
# 0700); clients use it with SLURM_CONF=/run/ringtrain-slurm-rt<ID>/slurm.conf
# (printed on stdout). Stop and remove all of it with slurm-down.sh [ID].
#
# Nodes: rt<ID>-h<N>, 4 CPUs each and no GPUs, one partition "rt" (default,
# no time limit). slurmctld listens on port 16800+ID,
# slurmd on 16900+ID inside each namespace.
# Needs root, iproute2, util-linux (unshare), munge and slurm-wlm (slurmctld,
# slurmd, slurm-client). Exits 77 (CTest "skipped") with the reason when one
# is missing, 1 when cluster ID is in use or a daemon does not come up (the
# half-built cluster is removed, its logs are shown first).
set -euo pipefail
k=${1:?usage: slurm-up.sh K [ID]}
id=${2:-0}
if ! [[ $k =~ ^[0-9]+$ ]] || (( k < 1 || k > 64 )); then echo "slurm-up: K must be 1..64" >&2; exit 2; fi
if ! [[ $id =~ ^[0-9]+$ ]] || (( id > 99 )); then echo "slurm-up: ID must be 0..99" >&2; exit 2; fi
here=$(cd "$(dirname "$0")" && pwd)
pre=rt$id
net=10.77.$id
dir=/run/ringtrain-slurm-$pre
ctld_port=$((16800 + id))
slurmd_port=$((16900 + id))

skip() { echo "slurm-up: SKIP: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "a test Slurm cluster needs root (daemons, network namespaces)"
for tool in munged mungekey slurmctld slurmd sbatch scontrol sinfo unshare nsenter ip ss; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (munge, slurm-wlm, util-linux, iproute2; .ci/install-deps.sh installs them)"
done

# Refuse to run over a cluster that is up (or was left behind): its pid files
# and namespaces are ours to remove with slurm-down.sh, never to reuse.
if [ -e "$dir" ]; then
  echo "slurm-up: $dir exists: Slurm test cluster $id is up or was left behind (slurm-down.sh $id removes it)" >&2
  exit 1
fi
if ss -Htln "sport = :$ctld_port" 2>/dev/null | grep -q .; then
  echo "slurm-up: TCP port $ctld_port (slurmctld of cluster $id) is in use on this host: choose another ID" >&2
  exit 1
fi

# The hosts first: netns-up.sh refuses a bridge or subnet that exists and
# exits 77 where namespaces cannot be made.
rc=0
"$here/../netns-up.sh" "$k" "$id" || rc=$?
[ $rc = 0 ] || exit $rc

fail() {
  echo "slurm-up: $*" >&2
  for f in "$dir"/log/*.log; do
    [ -f "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; }
  done
  "$here/slurm-down.sh" "$id" >/dev/null 2>&1 || true
  exit 1
}
trap 'fail "failed at line $LINENO; removing what was created"' ERR

mkdir -m 0700 "$dir"
mkdir -m 0711 "$dir/munge"
mkdir -m 0700 "$dir/state" "$dir/spool" "$dir/log"

# munge: a key of this cluster only, and a socket in the scratch directory
# (the system's munged, if any, and /run/munge are left alone).
mungekey --create --keyfile="$dir/munge/munge.key" --bits=1024
munged --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
  --seed-file="$dir/munge/munged.seed" --force
[ -S "$dir/munge/munge.socket" ] || fail "munged did not create its socket"

# The controller's name must be this host's: slurmctld checks it.
ctl=$(hostname -s)
nodes=()
for n in $(seq 1 "$k"); do nodes+=("$pre-h$n"); done
{
  echo "# slurm.conf of the ringtrain Slurm test cluster $id (cluster/slurm/slurm-up.sh)"
  echo "ClusterName=ringtrain$id"
  echo "SlurmctldHost=$ctl($net.254)"
  echo "SlurmctldPort=$ctld_port"
  echo "SlurmdPort=$slurmd_port"
  echo "SlurmUser=root"
  echo "SlurmdUser=root"
  echo "AuthType=auth/munge"
  echo "CredType=cred/munge"
  echo "AuthInfo=socket=$dir/munge/munge.socket"
  echo "StateSaveLocation=$dir/state"
  echo "SlurmdSpoolDir=$dir/spool/%n"
  echo "SlurmctldPidFile=$dir/slurmctld.pid"
  echo "SlurmdPidFile=$dir/slurmd.%n.pid"
  echo "SlurmctldLogFile=$dir/log/slurmctld.log"
  echo "SlurmdLogFile=$dir/log/slurmd.%n.log"
  # no cgroups in a container: processes are tracked by parent pid
  echo "ProctrackType=proctrack/linuxproc"
  echo "TaskPlugin=task/none"
  echo "JobAcctGatherType=jobacct_gather/none"
  echo "AccountingStorageType=accounting_storage/none"
  echo "JobCompType=jobcomp/none"
  echo "MpiDefault=none"
  echo "SelectType=select/cons_tres"
  echo "SelectTypeParameters=CR_CPU"
  echo "SchedulerType=sched/builtin"
  # the configured CPUs, not this machine's, so tests fit on a small host
  echo "SlurmdParameters=config_overrides"
  # a node that comes back (slurmd restarted) is usable again
  echo "ReturnToService=2"
  # short timeouts: a dead node is noticed within SlurmdTimeout
  echo "SlurmdTimeout=6"
  echo "MessageTimeout=5"
  echo "KillWait=5"
  echo "InactiveLimit=0"
  echo "MinJobAge=600"
  echo "JobRequeue=1"
  for n in $(seq 1 "$k"); do
    echo "NodeName=$pre-h$n NodeAddr=$net.$n CPUs=4 RealMemory=1024 State=UNKNOWN"
  done
  echo "PartitionName=rt Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} > "$dir/slurm.conf"
chmod 0644 "$dir/slurm.conf"
export SLURM_CONF=$dir/slurm.conf

slurmctld -f "$SLURM_CONF" -i
for n in $(seq 1 "$k"); do "$here/slurm-node.sh" "$id" "$n"; done

# Up when every node is idle (slurmd registered with slurmctld); a node the
# controller refuses (inval, drain) fails at once.
states=""
for _ in $(seq 1 60); do
  states=$(sinfo -h -N -o '%N %t' 2>&1 | sort -u | tr '\n' ' ') || true
  [ "$(grep -o ' idle ' <<< " $states" | wc -l)" = "$k" ] && break
  case $states in *inval*|*drain*) fail "a node was refused: $states" ;; esac
  sleep 0.5
done
[ "$(grep -o ' idle ' <<< " $states" | wc -l)" = "$k" ] || fail "the $k nodes did not become idle: $states"
trap - ERR
echo "slurm-up: cluster $id: slurmctld $ctl($net.254:$ctld_port), nodes ${nodes[*]} idle" >&2
echo "SLURM_CONF=$SLURM_CONF"

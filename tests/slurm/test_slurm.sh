#!/usr/bin/env bash
# test_slurm.sh - cluster/slurm/ringtrain.sbatch on a real Slurm: starts the
# Slurm test cluster (cluster/slurm/slurm-up.sh 2 ID: munged, slurmctld, one
# slurmd per network-namespace node), runs the jobs of slurm_jobs.py (2 nodes
# x 2 tasks equal to mpirun -np 4 byte for byte; SIGTERM + requeue resumes
# exactly; a killed node ends the job cleanly and a resubmission resumes),
# and removes everything from an EXIT trap: daemons, namespaces, bridge,
# /run/ringtrain-slurm-rt<ID>, the scratch directory. After the trap has
# run, the test checks that none of it is left and fails if anything is.
#
# Registered only in the build without sanitizers (tests/slurm/CMakeLists.txt):
# it checks the Slurm template and the multi-node path, which the ASan build
# would only run again, slower. Skips (77) with the reason when it cannot run:
# not root, munge/slurm-wlm/iproute2 missing, no network namespaces.
# Usage: test_slurm.sh [ID]  (cluster ID 0-99, default 61; RT_SOURCE_DIR,
# RINGTRAIN as ctest sets them).
set -uo pipefail
id=${1:-61}
src=${RT_SOURCE_DIR:?RT_SOURCE_DIR must name the source tree}
sl=$src/cluster/slurm
dir=/run/ringtrain-slurm-rt$id
py=${RT_TEST_PYTHON:-/usr/bin/python3}
[ "$(id -u)" = 0 ] || { echo "SKIP: the Slurm test cluster needs root"; exit 77; }

# Another run of this test holding cluster $id is refused, not torn down;
# what a killed run left behind (its owner gone) is removed first.
if [ -f "$dir/owner" ] && owner=$(cat "$dir/owner") && [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then
  echo "FAIL: Slurm test cluster $id ($dir) is in use by the test run with pid $owner;" \
       "run this one with another ID (test_slurm.sh ID)"
  exit 1
fi
bash "$sl/slurm-down.sh" "$id" >/dev/null 2>&1

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rt_slurm.XXXXXX")
cleanup() {
  local rc=$? left=""
  trap - EXIT TERM INT
  bash "$sl/slurm-down.sh" "$id" || left="$left slurm-down.sh-failed"
  rm -rf -- "$scratch"
  # The checks after the trap's work: nothing of the cluster or the jobs.
  # one grep over every command line; "[r]" keeps it from matching its own
  for p in $(grep -laE -e "/[r]t_slurm\.${scratch##*rt_slurm.}" -e "/run/[r]ingtrain-slurm-rt$id/" \
               /proc/[0-9]*/cmdline 2>/dev/null | sed -n 's|^/proc/\([0-9]*\)/cmdline$|\1|p'); do
    left="$left pid:$p($(cat "/proc/$p/comm" 2>/dev/null))"
  done
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qE "^rt$id-" && left="$left namespaces:rt$id-*"
  ip link show "rt$id-br" >/dev/null 2>&1 && left="$left bridge:rt$id-br"
  for f in "$dir" "/run/ringtrain-netns-rt$id" "$scratch"; do
    [ -e "$f" ] && left="$left file:$f"
  done
  if [ -n "$left" ]; then
    echo "FAIL: left behind after cleanup:$left"
    [ "$rc" = 0 ] || [ "$rc" = 77 ] && rc=1
  else
    echo "ok: cleanup left no daemon, process, namespace, bridge or file behind"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

t0=$SECONDS
rc=0
bash "$sl/slurm-up.sh" 2 "$id" >/dev/null || rc=$?
if [ "$rc" = 77 ]; then echo "SKIP: no Slurm test cluster here (reason above)"; exit 77; fi
if [ "$rc" != 0 ]; then echo "FAIL: slurm-up.sh 2 $id exited $rc"; exit 1; fi
echo $$ > "$dir/owner"
echo "ok: Slurm test cluster $id up in $((SECONDS - t0)) s"
"$py" "$src/tests/slurm/slurm_jobs.py" "$id" "$scratch"

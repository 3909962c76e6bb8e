#!/usr/bin/env bash
# allreduce.sh - runs `ringtrain bench allreduce` (our ring against
# MPI_Allreduce, same run, same MPI settings) the way docs/PERFORMANCE.md
# reports it, and prints the machine, load and settings first.
#   bench/allreduce.sh [BUILD_DIR] [-- extra bench flags]
# NP (default 2), MIN (4K), MAX (256M), ITERS (20) come from the environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
[ "${1:-}" = "--" ] && shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader,tcp
# CMA single-copy is far slower than copy-in/copy-out in this container
# (see docs/PERFORMANCE.md); both backends run with the same setting.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(. /etc/os-release; echo "$PRETTY_NAME")"
echo "# mpi: $(mpiexec --version | head -1); btl=$OMPI_MCA_btl single_copy=$OMPI_MCA_btl_vader_single_copy_mechanism"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cmd=(mpiexec -n "${NP:-2}" "$build/launch/ringtrain" bench allreduce
     --min "${MIN:-4K}" --max "${MAX:-256M}" --iters "${ITERS:-20}" "$@")
echo "# command: ${cmd[*]}"
"${cmd[@]}"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

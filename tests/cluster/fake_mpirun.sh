#!/usr/bin/env bash
# fake_mpirun.sh - a stand-in for mpirun in the launcher's restart tests
# (RT_MPIRUN=this). Each call records its argv, one word a line, in
# $FAKE_MPIRUN_DIR/argv.<n> and acts out the n-th word of $FAKE_MPIRUN_PLAN
# (comma-separated), with mpirun's real messages:
#   ok     exit 0
#   kill9  "mpirun noticed that process rank 1 ... signal 9 (Killed)", exit 137
#   hang   a rank's collective-timeout ERROR line and MPI_ABORT, exit 1
#   usage  a rank's usage error, exit 2
#   term   waits for SIGTERM (touches ready.<n> first), records it, exit 143
#   deaf   ignores SIGTERM (touches ready.<n> first) and sleeps 30 s
#   orphan leaves a "rank" behind (sleep 60 in a session of its own, as an
#          Open MPI rank has its own process group; pid in orphan.<n>), then
#          acts as kill9
set -u
dir=$FAKE_MPIRUN_DIR
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count"
printf '%s\n' "$@" > "$dir/argv.$n"
IFS=, read -r -a plan <<< "$FAKE_MPIRUN_PLAN"
act=${plan[$((n - 1))]:-ok}
case $act in
  ok) echo "[1,0]<stdout>:done"; exit 0 ;;
  kill9)
    echo "--------------------------------------------------------------------------" >&2
    echo "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed)." >&2
    exit 137 ;;
  hang)
    echo "[1,0]<stderr>:[r0/4 vm] ring.c:1 ERROR: allreduce timed out after 5 s waiting for rank 3" >&2
    echo "MPI_ABORT was invoked on rank 0 in communicator MPI_COMM_WORLD" >&2
    exit 1 ;;
  orphan)
    setsid sleep 60 </dev/null >/dev/null 2>&1 &
    echo $! > "$dir/orphan.$n"
    echo "mpirun noticed that process rank 0 with PID 0 on node vm exited on signal 9 (Killed)." >&2
    exit 137 ;;
  usage) echo "[1,0]<stderr>:ringtrain train: unknown flag '--bogus'" >&2; exit 2 ;;
  term)
    trap 'echo TERM > "$dir/got.$n"; exit 143' TERM
    touch "$dir/ready.$n"
    for _ in $(seq 100); do sleep 0.1; done
    exit 0 ;;
  deaf)
    trap 'echo TERM > "$dir/got.$n"' TERM
    touch "$dir/ready.$n"
    for _ in $(seq 300); do sleep 0.1; done
    exit 0 ;;
esac
exit 99

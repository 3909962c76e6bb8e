#!/usr/bin/env bash
# test_launch_restart.sh - `ringtrain launch` end to end with a stand-in
# mpirun (fake_mpirun.sh): restarts with the cause and the checkpoint they
# resume from, --resume auto on restarts only, processes that outlive
# mpirun killed before a restart, no retry of usage errors,
# the restart limit, SIGTERM forwarding, exit codes, hostfile and -np
# refusals naming the line, and argv passed through verbatim (no shell).
set -u
RINGTRAIN=${RINGTRAIN:?RINGTRAIN must name the ringtrain binary}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/rt_launch_restart.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fails=$((fails + 1)); fi
}
has() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }

# run NAME PLAN LAUNCH-ARGS... : fresh fake-mpirun state, stderr in $work/NAME.err
run() {
  local name=$1 plan=$2; shift 2
  rm -rf "$work/fake"; mkdir -p "$work/fake"
  FAKE_MPIRUN_DIR=$work/fake FAKE_MPIRUN_PLAN=$plan RT_MPIRUN=$here/fake_mpirun.sh \
    "$RINGTRAIN" launch "$@" >"$work/$name.out" 2>"$work/$name.err"
  echo $? > "$work/$name.rc"
}
rc() { cat "$work/$1.rc"; }
calls() { cat "$work/fake/count" 2>/dev/null || echo 0; }

ck=$work/ckpt
mkdir -p "$ck"
touch "$ck/ckpt-00000040.h5" "$ck/ckpt-00000020.h5" "$ck/.ckpt-00000060.h5.tmp"
# shellcheck disable=SC2054 # mlp:4,8,2 is one word
train=(train --model mlp:4,8,2 --data d.h5 --batch 4 --ckpt-dir "$ck")

# 1. kill -9 then a collective timeout, then success: two restarts
run restart kill9,hang,ok -np 2 --oversubscribe --max-restarts 2 -- "${train[@]}"
check "restarted job exits 0" test "$(rc restart)" = 0
check "three mpirun runs" test "$(calls)" = 3
check "restart 1 names rank 1, signal 9 and the checkpoint" has "$work/restart.err" \
  "restart 1 of 2 after: rank 1 exited on signal 9 (Killed) (mpirun exit 137); resuming from $ck/ckpt-00000040.h5"
check "restart 2 names the timeout message" has "$work/restart.err" \
  "restart 2 of 2 after: [r0/4 vm] ring.c:1 ERROR: allreduce timed out after 5 s waiting for rank 3 (mpirun exit 1)"
check "first run has no --resume" lacks "$work/fake/argv.1" "--resume"
check "restart ends with --resume auto" test "$(tail -n 2 "$work/fake/argv.2" | tr '\n' ' ')" = "--resume auto "
check "the mpirun command is printed" has "$work/restart.err" "ringtrain launch: running: $here/fake_mpirun.sh -np 2 --oversubscribe --tag-output"

# 1b. a process of the job that outlives mpirun is killed before the restart
run orphan orphan,ok -np 2 --oversubscribe --max-restarts 1 -- "${train[@]}"
opid=$(cat "$work/fake/orphan.1" 2>/dev/null || echo 0)
check "orphan: restarted job exits 0" test "$(rc orphan)" = 0
check "orphan: the leftover process is gone" test "$opid" -gt 0 -a ! -e "/proc/$opid"
check "orphan: named on stderr" has "$work/orphan.err" "1 process of the job outlived mpirun (pid $opid): killed"
check "orphan: killed before the restart" test "$(grep -n 'outlived mpirun' "$work/orphan.err" | cut -d: -f1)" \
  -lt "$(grep -n 'restart 1 of 1' "$work/orphan.err" | cut -d: -f1)"
[ "$opid" -gt 0 ] && kill -9 "$opid" 2>/dev/null

# 2. restart limit
run limit kill9,kill9,ok -np 2 --oversubscribe --max-restarts 1 -- "${train[@]}"
check "limit: exit 1" test "$(rc limit)" = 1
check "limit: two runs" test "$(calls)" = 2
check "limit: says it gives up" has "$work/limit.err" "giving up after 1 restart"

# 3. a usage error is never retried
run usage usage -np 2 --oversubscribe --max-restarts 3 -- "${train[@]}"
check "usage: exit 2" test "$(rc usage)" = 2
check "usage: one run" test "$(calls)" = 1
check "usage: says why" has "$work/usage.err" "usage error (exit 2); not restarting"

# 4. --resume never cannot be restarted; restarts need --ckpt-dir
run never ok -np 2 --oversubscribe --max-restarts 1 -- "${train[@]}" --resume never
check "--resume never + restarts: exit 2, no run" test "$(rc never)/$(calls)" = 2/0
check "--resume never: says why" has "$work/never.err" "with --resume never"
run nockpt ok -np 2 --oversubscribe --max-restarts 1 -- train --model m
check "restarts without --ckpt-dir: exit 2" test "$(rc nockpt)/$(calls)" = 2/0

# 5. SIGTERM to the launcher reaches mpirun; no restart; exit 128+15
rm -rf "$work/fake"; mkdir -p "$work/fake"
FAKE_MPIRUN_DIR=$work/fake FAKE_MPIRUN_PLAN=term,ok RT_MPIRUN=$here/fake_mpirun.sh \
  "$RINGTRAIN" launch -np 2 --oversubscribe --max-restarts 2 -- "${train[@]}" 2>"$work/term.err" &
lpid=$!
for _ in $(seq 100); do [ -e "$work/fake/ready.1" ] && break; sleep 0.05; done
kill -TERM "$lpid"
wait "$lpid"; trc=$?
check "SIGTERM: launcher exits 143" test "$trc" = 143
check "SIGTERM: forwarded to mpirun" test -e "$work/fake/got.1"
check "SIGTERM: no restart" test "$(calls)" = 1

# 5b. an mpirun that ignores SIGTERM is killed 2 x grace + 5 s later
rm -rf "$work/fake"; mkdir -p "$work/fake"
FAKE_MPIRUN_DIR=$work/fake FAKE_MPIRUN_PLAN=deaf RT_MPIRUN=$here/fake_mpirun.sh \
  "$RINGTRAIN" launch -np 1 --grace 1 -- train --model m 2>"$work/deaf.err" &
lpid=$!
for _ in $(seq 100); do [ -e "$work/fake/ready.1" ] && break; sleep 0.05; done
t0=$(date +%s%N)
kill -TERM "$lpid"
wait "$lpid"; drc=$?
took=$(( ($(date +%s%N) - t0) / 1000000 ))
check "deaf mpirun: launcher exits 143" test "$drc" = 143
check "deaf mpirun: SIGKILL after 7 s (took $took ms)" test "$took" -ge 6500 -a "$took" -lt 12000
check "deaf mpirun: says so" has "$work/deaf.err" "mpirun still running 7 s after signal 15: sending SIGKILL"

# 6. mpirun missing
RT_MPIRUN=$work/no-such-mpirun "$RINGTRAIN" launch -np 1 -- train --model m 2>"$work/nompi.err"
check "missing mpirun: exit 127" test $? = 127
check "missing mpirun: says so" has "$work/nompi.err" "cannot execute $work/no-such-mpirun"

# 7. hostfile and -np checks: exit 2 naming the line, before any run
printf 'h1 slots=2\nh2 slots=2 gpus=4\n' > "$work/bad.hosts"
run badhf ok --hostfile "$work/bad.hosts" -- train --model m
check "bad hostfile: exit 2, no run" test "$(rc badhf)/$(calls)" = 2/0
check "bad hostfile: names the line" has "$work/badhf.err" "$work/bad.hosts:2: unknown key 'gpus'"
# every class of bad hostfile, through the command: exit 2, "FILE:LINE: reason"
badcase() { # badcase NAME LINE REASON CONTENT
  printf '%b' "$4" > "$work/$1.hosts"
  "$RINGTRAIN" launch --hostfile "$work/$1.hosts" --dry-run -- train >/dev/null 2>"$work/$1.err"
  local code=$?
  check "hostfile $1: exit 2 naming line $2" test "$code" = 2
  check "hostfile $1: says '$3'" has "$work/$1.err" "$work/$1.hosts:$2: $3"
}
badcase unknown-key 2 "unknown key 'cpus'" 'a slots=2\nb slots=2 cpus=4\n'
badcase zero-slots 1 "slots=0 must be at least 1" 'a slots=0\n'
badcase negative-slots 3 "slots=-1 must be at least 1" '# c\n\na slots=-1\n'
badcase duplicate 3 "duplicate host 'a' (first on line 1)" 'a slots=1\nb slots=1\na slots=1\n'
badcase non-numeric 1 "slots='two' is not a number" 'a slots=two\n'
badcase empty 1 "no hosts in the hostfile" ''
badcase comments-only 2 "no hosts in the hostfile" '# nothing\n\n'
printf '# two hosts\nh1 slots=2\nh2 slots=2\n' > "$work/good.hosts"
run np5 ok --hostfile "$work/good.hosts" -np 5 -- train --model m
check "-np beyond slots: exit 2" test "$(rc np5)/$(calls)" = 2/0
check "-np beyond slots: names lines" has "$work/np5.err" "$work/good.hosts:2 h1 slots=2"
# a bare environment, so that nothing is forwarded with -x
env -i PATH="$PATH" RT_MPIRUN="$here/fake_mpirun.sh" OMP_NUM_THREADS=1 "$RINGTRAIN" launch \
  --hostfile "$work/good.hosts" -np 5 --oversubscribe --dry-run -- train --model m \
  >"$work/np5o.out" 2>"$work/np5o.err"
check "--oversubscribe allows it (dry run: no mpirun run)" test "$?/$(calls)" = 0/0
check "dry run prints only the command" test "$(cat "$work/np5o.out")" = \
  "$here/fake_mpirun.sh -np 5 --hostfile $work/good.hosts --oversubscribe --tag-output --bind-to none --mca odls_base_sigkill_timeout 3 -x OMP_NUM_THREADS $RINGTRAIN train --model m"
run nonp ok -- train --model m
check "no -np and no hostfile: exit 2" test "$(rc nonp)" = 2
run nojob ok -np 2
check "no job after --: exit 2" test "$(rc nojob)" = 2

# 8. arguments reach mpirun verbatim, one word each (no shell in between)
# shellcheck disable=SC2016 # the point: text that a shell would run
evil='$(touch '"$work"'/pwned);`touch '"$work"'/pwned2` x'
run verbatim ok -np 1 --mpirun-arg "$evil" -- train --model "a b" --name "$evil"
check "verbatim: ran" test "$(rc verbatim)" = 0
check "verbatim: mpirun arg is one word" has "$work/fake/argv.1" "$evil"
check "verbatim: nothing was executed" test ! -e "$work/pwned" -a ! -e "$work/pwned2"
check "verbatim: 'a b' stays one word" has "$work/fake/argv.1" "a b"

echo "$fails failed"
[ "$fails" = 0 ]

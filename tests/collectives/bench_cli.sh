#!/usr/bin/env bash
# bench_cli.sh - `ringtrain bench allreduce` rejects bad flags with exit code
# 2 and a one-line reason, and a short single-rank run prints JSON rows with
# no wrong results (checked with Python's json module as the parser).
set -u
rt=${RINGTRAIN:?RINGTRAIN must point at the ringtrain binary}
fail=0
expect_usage() {
  local err
  err=$("$rt" "$@" 2>&1 >/dev/null); local rc=$?
  local lines; lines=$(printf '%s\n' "$err" | grep -c .)
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ]; then
    echo "FAIL: ringtrain $* -> exit $rc, $lines stderr lines: $err"; fail=1
  else
    echo "ok: ringtrain $* -> $err"
  fi
}
expect_usage bench
expect_usage bench nosuch
expect_usage bench allreduce --iters 0
expect_usage bench allreduce --iters x
expect_usage bench allreduce --backend foo
expect_usage bench allreduce --min 1
expect_usage bench allreduce --min -4K
expect_usage bench allreduce --min 8K --max 4K
expect_usage bench allreduce --max 100G
expect_usage bench allreduce --bogus
expect_usage bench allreduce --json=1
out=$("$rt" bench allreduce --min 4K --max 64K --iters 2 --json) || { echo "FAIL: json run exit $?"; fail=1; }
printf '%s\n' "$out" | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
assert [r["size"] for r in rows] == [4096, 8192, 16384, 32768, 65536], rows
for r in rows:
    for b in ("ring", "mpi"):
        assert r[b]["wrong"] == 0 and r[b]["time_us"] > 0, r
print("ok: json rows", len(rows))
' || fail=1
exit $fail

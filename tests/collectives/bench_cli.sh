#!/usr/bin/env bash
# bench_cli.sh - `ringtrain bench allreduce` rejects bad flags with exit code
# 2 and a one-line reason, and a short single-rank run prints JSON rows with
# no wrong results (checked with Python's json module as the parser).
# Without a GPU (forced with CUDA_VISIBLE_DEVICES=""), --backend nccl fails
# with one line: exit 2 in a CPU-only build ("no CUDA path"), exit 1 in a
# CUDA build ("no CUDA device is visible"); --backend all still prints the
# host table plus a one-line note that the device part was skipped.
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
rows = [r for r in rows if r.get("buffers") != "device"]  # a GPU machine adds device rows
assert [r["size"] for r in rows] == [4096, 8192, 16384, 32768, 65536], rows
for r in rows:
    for b in ("ring", "mpi"):
        assert r[b]["wrong"] == 0 and r[b]["time_us"] > 0, r
print("ok: json rows", len(rows))
' || fail=1

# ---- no GPU: --backend nccl and all ----
if "$rt" version | grep -q 'cuda off'; then
  want_rc=2; want_msg='no CUDA path'
else
  want_rc=1; want_msg='no CUDA device is visible'
fi
err=$(CUDA_VISIBLE_DEVICES= "$rt" bench allreduce --backend nccl --max 8K 2>&1 >/dev/null); rc=$?
lines=$(printf '%s\n' "$err" | grep -c .)
if [ "$rc" -ne "$want_rc" ] || [ "$lines" -ne 1 ] || ! printf '%s' "$err" | grep -q "$want_msg"; then
  echo "FAIL: --backend nccl without a GPU -> exit $rc (want $want_rc), $lines stderr lines: $err"; fail=1
else
  echo "ok: --backend nccl without a GPU -> exit $rc: $err"
fi
out=$(CUDA_VISIBLE_DEVICES= "$rt" bench allreduce --backend all --min 4K --max 8K --iters 2 2>/dev/null); rc=$?
rows=$(printf '%s\n' "$out" | grep -cE '^ +[0-9]+ +[0-9]+ ')
notes=$(printf '%s\n' "$out" | grep -c '^# device buffers (nccl): skipped: ')
if [ "$rc" -ne 0 ] || [ "$rows" -ne 2 ] || [ "$notes" -ne 1 ]; then
  echo "FAIL: --backend all without a GPU -> exit $rc, $rows host rows (want 2), $notes skip notes (want 1):"
  printf '%s\n' "$out"; fail=1
else
  echo "ok: --backend all without a GPU -> host table ($rows rows) and: $(printf '%s\n' "$out" | grep '^# device')"
fi
# --json: stdout stays JSON rows (host only), the note goes to stderr
err_file=$(mktemp)
out=$(CUDA_VISIBLE_DEVICES= "$rt" bench allreduce --backend all --min 4K --max 8K --iters 2 --json 2>"$err_file"); rc=$?
if [ "$rc" -ne 0 ] || ! grep -q '^# device buffers (nccl): skipped: ' "$err_file" ||
   ! printf '%s\n' "$out" | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
assert [r["size"] for r in rows] == [4096, 8192], rows
assert all("ring" in r and "mpi" in r and "buffers" not in r for r in rows), rows
'; then
  echo "FAIL: --backend all --json without a GPU -> exit $rc, stderr: $(cat "$err_file")"; fail=1
else
  echo "ok: --backend all --json without a GPU: JSON host rows, note on stderr"
fi
rm -f "$err_file"
exit $fail

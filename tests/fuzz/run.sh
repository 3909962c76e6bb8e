#!/usr/bin/env bash
# run.sh - runs libFuzzer targets (a -DRT_FUZZ=ON build) from the seed
# corpus, each for a time, and prints per target: executions, coverage
# (libFuzzer's "cov", edges) and features, and whether it crashed. A
# crashing input is kept in ARTIFACTS (default ./fuzz-artifacts) and the
# script exits 1: add it to tests/fuzz/regress/<target>/ with the fix.
# New inputs go to a scratch copy of the corpus; --merge folds them back
# into tests/fuzz/corpus/<target> (minimised with -merge=1).
# Usage: tests/fuzz/run.sh [--seconds N] [--bin-dir D] [--artifacts D] [--logs D] [--merge] [TARGET...]
set -uo pipefail
src=$(cd "$(dirname "$0")" && pwd)
seconds=60; bin=build-fuzz/tests/fuzz; art=fuzz-artifacts; merge=0; logs=
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2;;
    --bin-dir) bin=$2; shift 2;;
    --artifacts) art=$2; shift 2;;
    --logs) logs=$2; shift 2;;
    --merge) merge=1; shift;;
    -h|--help) sed -n '2,12p' "$0"; exit 0;;
    --*) echo "run.sh: unknown flag $1" >&2; exit 2;;
    *) break;;
  esac
done
targets=("$@")
if ((${#targets[@]} == 0)); then
  for d in "$src"/corpus/*/; do targets+=("$(basename "$d")"); done
fi
mkdir -p "$art"
[ -n "$logs" ] && mkdir -p "$logs"
status=0
printf '%-18s %10s %7s %6s %6s %14s %s\n' target execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  exe=$bin/$t
  [ -x "$exe" ] || { echo "run.sh: no $exe (configure with -DCMAKE_C_COMPILER=clang -DRT_FUZZ=ON)" >&2; exit 2; }
  work=$(mktemp -d)
  log=$work/log
  cp -r "$src/corpus/$t/." "$work/" 2>/dev/null || true
  rm -f "$work/log"
  mkdir -p "$work/new"
  regress=()
  [ -d "$src/regress/$t" ] && regress=("$src/regress/$t")
  # the regression inputs once, then fuzzing from the corpus
  if ((${#regress[@]})) && ! "$exe" "${regress[@]}"/* >"$log" 2>&1; then
    echo "$t: a regression input crashes again:"; tail -20 "$log"; status=1; rm -rf "$work"; continue
  fi
  "$exe" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 -timeout=30 \
    -artifact_prefix="$art/$t-" "$work/new" "$src/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
  [ -n "$logs" ] && cp "$log" "$logs/$t.log"
  if [ $rc -eq 0 ]; then res=ok; else res="CRASH (exit $rc; input in $art/)"; status=1; tail -40 "$log"; fi
  printf '%-18s %10s %7s %6s %6s %14s %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$res"
  if [ $merge = 1 ] && [ $rc -eq 0 ]; then
    "$exe" -merge=1 "$src/corpus/$t" "$work/new" >/dev/null 2>&1
  fi
  rm -rf "$work"
done
exit $status

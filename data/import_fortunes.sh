#!/usr/bin/env bash
# import_fortunes.sh - the demo corpus of the byte-level GPT: the plain-text
# fortune files of Debian's `fortunes` package (with fortunes-min), sorted by
# name, imported with `ringtrain data import-text` into
# OUTDIR/fortunes-train.h5 and OUTDIR/fortunes-val.h5 (the last 5 % of the
# bytes), printing the token counts.
#   bash data/import_fortunes.sh OUTDIR [RINGTRAIN_BINARY]
# RINGTRAIN_BINARY defaults to `ringtrain` on PATH, else build/launch/ringtrain.
# Only regular files directly in the directory are taken: not the strfile
# indexes (*.dat), not the *.u8 symlinks (the same text again), no other
# symlink, nothing in subdirectories (off/, the offensive ones).
# Environment: RT_FORTUNES_DIR (default /usr/share/games/fortunes).
set -euo pipefail
me=import_fortunes.sh
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: bash data/import_fortunes.sh OUTDIR [RINGTRAIN_BINARY]" >&2
  exit 2
fi
out=$1
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 2 ]; then
  rt=$2
elif command -v ringtrain >/dev/null; then
  rt=ringtrain
else
  rt=$root/build/launch/ringtrain
fi
if ! command -v "$rt" >/dev/null; then
  echo "$me: no ringtrain binary at '$rt'; build it or give it as the second argument" >&2
  exit 2
fi
src=${RT_FORTUNES_DIR:-/usr/share/games/fortunes}
if [ ! -d "$src" ]; then
  echo "$me: $src not found: install Debian's fortunes package" \
    "(apt-get install fortunes, or bash .ci/install-deps.sh)" >&2
  exit 2
fi
# C collation: the same order on every machine (and as Python's sorted())
mapfile -d '' files < <(find "$src" -mindepth 1 -maxdepth 1 -type f \
  ! -name '*.dat' ! -name '*.u8' -print0 | LC_ALL=C sort -z)
if [ ${#files[@]} -eq 0 ]; then
  echo "$me: no fortune files in $src: is the fortunes package installed completely?" >&2
  exit 2
fi
args=()
for f in "${files[@]}"; do
  args+=(--input "$f")
done
mkdir -p "$out"
echo "$me: ${#files[@]} files from $src"
"$rt" data import-text "${args[@]}" --out "$out/fortunes-train.h5" \
  --val-out "$out/fortunes-val.h5" --val-fraction 0.05

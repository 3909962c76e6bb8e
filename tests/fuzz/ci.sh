#!/usr/bin/env bash
# ci.sh - the CI's fuzzing pass: a clang build with -DRT_FUZZ=ON (ASan +
# UBSan + libFuzzer) of the fuzz targets only, each run for a short time
# (RT_FUZZ_SECONDS, default 10) from the seed corpus after its regression
# inputs. fuzz_h5_open is left out: libhdf5 itself can hang on a damaged
# file (tests/fuzz/known/README.md); its corpus is replayed by every build's
# tests instead. Long runs: tests/fuzz/run.sh --seconds 600.
# Usage (from the repository root): bash tests/fuzz/ci.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is not installed (.ci/install-deps.sh installs it)" >&2; exit 1; }
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DRT_FUZZ=ON -DRT_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target fuzz_all
targets=()
for d in tests/fuzz/corpus/*/; do
  t=$(basename "$d")
  [ "$t" = fuzz_h5_open ] || targets+=("$t")
done
bash tests/fuzz/run.sh --seconds "${RT_FUZZ_SECONDS:-10}" --bin-dir "$build/tests/fuzz" \
  --artifacts "$build/fuzz-artifacts" "${targets[@]}"

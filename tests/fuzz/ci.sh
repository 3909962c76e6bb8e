#!/usr/bin/env bash
# ci.sh - the CI's fuzzing pass: a clang build with -DRT_FUZZ=ON (ASan +
# UBSan + libFuzzer) of the fuzz targets only, each run for a short time
# (RT_FUZZ_SECONDS, default 10) from the seed corpus after its regression
# inputs: every target (tests/fuzz/corpus/*), one after another.
# Long runs: tests/fuzz/run.sh --seconds 600 (docs/RELIABILITY.md).
# Usage (from the repository root): bash tests/fuzz/ci.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is not installed (.ci/install-deps.sh installs it)" >&2; exit 1; }
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DRT_FUZZ=ON -DRT_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target fuzz_all
bash tests/fuzz/run.sh --seconds "${RT_FUZZ_SECONDS:-10}" --bin-dir "$build/tests/fuzz" \
  --artifacts "$build/fuzz-artifacts"

#!/usr/bin/env bash
# run.sh - the test suite: installs what is missing, builds into
# ${RT_BUILD_DIR:-build} and runs ctest. Extra cmake arguments come from
# RT_CMAKE_ARGS (for example "-DRT_CUDA=OFF -DRT_SANITIZE=ON"); extra ctest
# arguments are passed through (for example: bash tests/run.sh -L unit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash .ci/install-deps.sh
build=${RT_BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" ${RT_CMAKE_ARGS:-} >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"

#!/usr/bin/env bash
# run.sh - the test suite: installs what is missing, builds into
# ${RT_BUILD_DIR:-build} and runs ctest. Extra cmake arguments come from
# RT_CMAKE_ARGS (for example "-DRT_CUDA=OFF -DRT_SANITIZE=ON"); extra ctest
# arguments are passed through (for example: bash tests/run.sh -L unit).
# Warnings are errors here (-DRT_WERROR=ON) unless RT_CMAKE_ARGS sets
# RT_WERROR itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash .ci/install-deps.sh
build=${RT_BUILD_DIR:-build}
cmake_args=${RT_CMAKE_ARGS:-}
case " $cmake_args" in
  *" -DRT_WERROR="* | *" -D RT_WERROR="*) ;;
  *) cmake_args="-DRT_WERROR=ON $cmake_args" ;;
esac
# shellcheck disable=SC2086
cmake -S . -B "$build" $cmake_args >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"

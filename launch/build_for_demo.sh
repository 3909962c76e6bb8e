# build_for_demo.sh - sourced by the README's demo scripts (quickstart.sh,
# gpt_demo.sh) from the repository root: installs the Debian packages that
# are missing, configures and builds into ${RT_BUILD_DIR:-build}, and sets
# $rt to the ringtrain binary. Not run on its own.
bash .ci/install-deps.sh
build=${RT_BUILD_DIR:-build}
cmake -S . -B "$build" >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)"
rt="$build/launch/ringtrain"

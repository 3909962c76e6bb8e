#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages ringtrain needs to build,
# test and run its main job, if any is missing. Needs root for apt-get.
# Data: dataset-fashion-mnist (the MLP's), fortunes with its dependency
# fortunes-min (the byte-level GPT's text corpus, data/import_fortunes.sh;
# fortune-mod, the program it recommends, is not needed).
# ONNX export: libonnx-dev ships the onnx.proto that protoc-c compiles at
# build time, python3-onnx is the test's checker; the test installs ONNX
# Runtime from npm (onnxruntime-node), so it needs node and npm: Debian's
# nodejs and npm unless a node with its own npm (NodeSource's) is there.
# protobuf-compiler and python3-protobuf: the TensorBoard test decodes the
# event files with its own .proto, independently of protoc-c.
# Slurm test cluster (tests/slurm, cluster/slurm/slurm-up.sh): slurm-wlm
# (slurmctld, slurmd, client commands) and munge; util-linux (unshare,
# nsenter) and iproute2 (network namespaces) are needed too.
set -euo pipefail
packages=(build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools
  libprotobuf-c-dev protobuf-c-compiler libopenblas-dev zlib1g-dev libcjson-dev
  libonnx-dev python3-onnx protobuf-compiler python3-protobuf
  python3-torch python3-h5py python3-numpy python3-yaml dataset-fashion-mnist
  fortunes fortunes-min
  iproute2 util-linux slurm-wlm munge valgrind clang)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ringtrain setup: missing packages: ${missing[*]}" >&2
  echo "ringtrain setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "ringtrain setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs everything tlmd needs to build, test and benchmark on Debian 12.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # build
  bazel-bootstrap bazel-platforms g++ pkg-config ca-certificates
  # rpc and serialization
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # core libraries
  libabsl-dev libspdlog-dev libsqlite3-dev llvm-15-dev libxgboost-dev
  # tensor language model (server and models only)
  libtorch-dev
  # benchmark baseline
  libopenblas-dev
  # tests
  catch2
  # tools used by the main job and tests
  sqlite3 procps python3 openssl
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

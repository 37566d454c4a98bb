#!/usr/bin/env bash
# Installs what the build needs (deploy/setup.sh) and runs every test.
# Extra arguments go to `bazel test`, e.g. deploy/test.sh --test_output=all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
exec bazel test //... "$@"

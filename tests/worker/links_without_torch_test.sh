#!/usr/bin/env bash
# The worker must not link libtorch or XGBoost: only tlmd and models/ may.
# Usage: links_without_torch_test.sh WORKER_BINARY TLMD_BINARY
set -euo pipefail
needed() { readelf -d "$1" | awk '/NEEDED/ { print $NF }'; }
if needed "$1" | grep -E 'torch|c10|xgboost'; then
  echo "FAIL: $1 links libtorch or XGBoost"
  exit 1
fi
# The probe itself works: tlmd does link both.
for lib in libtorch libxgboost; do
  if ! needed "$2" | grep -q "$lib"; then
    echo "FAIL: readelf found no $lib in $2 either; the check proves nothing"
    exit 1
  fi
done
echo "PASS: $1 links neither libtorch nor XGBoost"

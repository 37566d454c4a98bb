#!/usr/bin/env bash
# The worker must not link libtorch: only tlmd and models/ may.
# Usage: links_without_torch_test.sh WORKER_BINARY TLMD_BINARY
set -euo pipefail
needed() { readelf -d "$1" | awk '/NEEDED/ { print $NF }'; }
if needed "$1" | grep -E 'torch|c10'; then
  echo "FAIL: $1 links libtorch"
  exit 1
fi
# The probe itself works: tlmd does link it.
if ! needed "$2" | grep -q 'libtorch'; then
  echo "FAIL: readelf found no libtorch in $2 either; the check proves nothing"
  exit 1
fi
echo "PASS: $1 does not link libtorch"

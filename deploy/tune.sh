#!/usr/bin/env bash
# The main job: a real tuning session on this machine with embedded defaults.
# Installs and builds what is missing, starts a local tlmd (dataset under ./var)
# and one local CPU worker, tunes a dense layer, prints the best program found
# and stops both processes.
#
# Environment overrides: TLM_WORKLOAD (default "dense M=128 N=768 K=768"),
# TLM_EPILOGUE (default "bias,relu"), TLM_TRIALS (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."

workload=${TLM_WORKLOAD:-"dense M=128 N=768 K=768"}
epilogue=${TLM_EPILOGUE:-"bias,relu"}
trials=${TLM_TRIALS:-64}

bash deploy/setup.sh
bazel build //server:tlmd //worker:tlm-worker //client:tlmctl
bin=$(bazel info bazel-bin 2>/dev/null)

mkdir -p var
rm -f var/tlmd.port
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$bin/server/tlmd" --listen=127.0.0.1:0 --port_file=var/tlmd.port --db=var/tlmd.db \
  >>var/tlmd.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s var/tlmd.port ] && break; sleep 0.1; done
if [ ! -s var/tlmd.port ]; then
  echo "tune: tlmd did not start; see var/tlmd.log" >&2
  tail -n 20 var/tlmd.log >&2
  exit 1
fi
server="127.0.0.1:$(cat var/tlmd.port)"
echo "tune: tlmd serving on $server (log var/tlmd.log, dataset var/tlmd.db)"

"$bin/worker/tlm-worker" --server="$server" --backend=cpu >>var/worker.log 2>&1 &
pids+=($!)
echo "tune: cpu worker (LLVM) started (log var/worker.log)"

ctl() { "$bin/client/tlmctl" --server="$server" "$@"; }
# shellcheck disable=SC2086
task=$(ctl submit $workload --epilogue="$epilogue" --trials="$trials" --name=tune.sh)
echo "tune: task $task: $workload +$epilogue, $trials trials on cpu"
ctl watch "$task"
echo
ctl best "$task" --source

#!/usr/bin/env bash
# Tunes one workload with each sampler (tlm with online fine-tuning, random,
# evolutionary) on a local tlmd and one LLVM CPU worker, and prints the best
# latency after k measurements for each. Run by hand from the repository root
# after `bazel build -c opt //server:tlmd //worker:tlm-worker //client:tlmctl`.
#
#   bench/compare_samplers.sh MODEL.tlm TRIALS OP NAME=INT... [--epilogue=...]
#
# The tlm task runs first, so its fine-tuning set holds only its own results.
# Environment: THREADS (worker threads, default 1), FINETUNE_EVERY (default 8),
# WINDOW (programs in flight per task, default 8).
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
model=$1 trials=$2
shift 2
bin=bazel-bin
dir=$(mktemp -d /tmp/compare.XXXXXX)
cp "$model" "$dir/model.tlm"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$bin/server/tlmd" --listen=127.0.0.1:0 --port_file="$dir/port" --db="$dir/tlmd.db" \
  --model="$dir/model.tlm" --finetune_every="${FINETUNE_EVERY:-8}" \
  --window_per_task="${WINDOW:-8}" >"$dir/tlmd.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ -s "$dir/port" ] && break; sleep 0.1; done
server="127.0.0.1:$(cat "$dir/port")"
"$bin/worker/tlm-worker" --server="$server" --backend=cpu --threads="${THREADS:-1}" \
  >"$dir/worker.log" 2>&1 &
pids+=($!)

start=$(date +%s)
for sampler in tlm random evolutionary; do
  t0=$(date +%s)
  "$bin/client/tlmctl" --server="$server" tune "$@" --sampler="$sampler" --trials="$trials" \
    --seed=1 --name="$sampler" >/dev/null
  echo "$sampler: $trials trials in $(( $(date +%s) - t0 )) s"
done
echo "fine-tuning rounds: $(grep -c 'fine-tuning round' "$dir/tlmd.log" || true)"

ks="1, 5, 10, 16, 32, 64, 128, 256, 1000"
sqlite3 -header -column "$dir/tlmd.db" "
  WITH ordered AS (
    SELECT t.name AS sampler,
           ROW_NUMBER() OVER (PARTITION BY t.id ORDER BY m.id) AS k,
           MIN(CASE WHEN m.error_kind = 1 THEN m.median_seconds END)
             OVER (PARTITION BY t.id ORDER BY m.id ROWS UNBOUNDED PRECEDING) AS best
    FROM measurements m JOIN programs p ON p.id = m.program_id JOIN tasks t ON t.id = p.task_id)
  SELECT k AS measurements,
         printf('%.3f', 1e3 * MAX(CASE WHEN sampler = 'tlm' THEN best END)) AS tlm_ms,
         printf('%.3f', 1e3 * MAX(CASE WHEN sampler = 'random' THEN best END)) AS random_ms,
         printf('%.3f', 1e3 * MAX(CASE WHEN sampler = 'evolutionary' THEN best END)) AS evolutionary_ms
  FROM ordered WHERE k IN ($ks) OR k = $trials GROUP BY k ORDER BY k;"
echo "dataset and logs: $dir (total $(( $(date +%s) - start )) s)"

#!/usr/bin/env bash
# Fine-tunes a model the way tlmd does in service: tunes every workload of
# each NETWORK with the tlm sampler (TRIALS per task, default 32, in rounds
# of 8) on a fresh tlmd and dataset with one LLVM CPU worker, fine-tuning
# after every round on the best program of every workload measured so far.
# The result is what bench/heldout_networks.sh evaluates on a network the
# model has not seen.
#
#   bench/finetune_on_networks.sh BASE.tlm OUT.tlm NETWORK...
#   bench/finetune_on_networks.sh /tmp/base.tlm /tmp/tuned.tlm bert_base resnet_50
#
# The worker is pinned with taskset to CPU $CPU when set. Run by hand from
# the repository root after
# `bazel build -c opt //server:tlmd //worker:tlm-worker //client:tlmctl`.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
base=$1 out=$2
shift 2
bin=bazel-bin
dir=$(mktemp -d /tmp/finetune.XXXXXX)
pin=()
if [ -n "${CPU:-}" ]; then pin=(taskset -c "$CPU"); fi
cp "$base" "$out"

"$bin/server/tlmd" --listen=127.0.0.1:0 --port_file="$dir/port" --db="$dir/tlmd.db" \
  --model="$out" --finetune_each_round >"$dir/tlmd.log" 2>&1 &
tlmd=$!
trap 'kill -TERM $tlmd ${worker:-} 2>/dev/null || true; wait' EXIT
for _ in $(seq 300); do [ -s "$dir/port" ] && break; sleep 0.1; done
server="127.0.0.1:$(cat "$dir/port")"
"${pin[@]}" "$bin/worker/tlm-worker" --server="$server" --backend=cpu --threads=1 \
  >"$dir/worker.log" 2>&1 &
worker=$!
for network in "$@"; do
  t0=$(date +%s)
  "$bin/client/tlmctl" --server="$server" tune --network="$network" --no-baseline --sampler=tlm \
    --seed=1 --name="$network" --trials="${TRIALS:-32}" --round=8 --tasks-per-round=1000 \
    >"$dir/$network.txt"
  echo "$network: $(($(date +%s) - t0)) s; $(grep '^estimated latency' "$dir/$network.txt")"
done
# The last rounds' fine-tuning runs in the background: wait until no round
# has finished for two minutes (longer than one takes here).
count() { grep -c 'fine-tuning round' "$dir/tlmd.log" || true; }
while true; do
  before=$(count)
  sleep 120
  [ "$(count)" = "$before" ] && break
done
echo "fine-tuning rounds: $(count); model in $out; logs in $dir"

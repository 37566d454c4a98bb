#!/usr/bin/env bash
# The main job: a real tuning session on this machine with embedded defaults.
# Installs and builds what is missing; pretrains the small default tensor
# language model on other networks' programs (once: var/model.tlm is reused);
# starts a local tlmd (dataset under ./var) that generates programs with the
# model and fine-tunes it on what it measures, and one local CPU worker
# (LLVM); tunes every workload of a small network; prints the untuned and best
# latency per workload and the network's estimated latency before and after;
# writes an HTML report; and stops both processes.
#
# Environment overrides: TLM_NETWORK (default bert_tiny), TLM_BUDGET
# (measurements for the whole network; default 128), TLM_ROUND (programs per
# task and round: every workload gets one round first, then the task
# scheduler gives each round to the workload expected to gain the network
# the most; default 8), TLM_SAMPLER (tlm, random or evolutionary; default
# tlm), TLM_PRETRAIN_STEPS (default 400); or TLM_WORKLOAD (e.g. "dense M=128
# N=768 K=768") with TLM_EPILOGUE (e.g. "bias,relu") and TLM_TRIALS (default
# 64) to tune one workload.
set -euo pipefail
cd "$(dirname "$0")/.."

network=${TLM_NETWORK:-bert_tiny}
workload=${TLM_WORKLOAD:-}
epilogue=${TLM_EPILOGUE:-}
trials=${TLM_TRIALS:-64}
budget=${TLM_BUDGET:-128}
round=${TLM_ROUND:-8}
sampler=${TLM_SAMPLER:-tlm}

bash deploy/setup.sh
bazel build //server:tlmd //worker:tlm-worker //client:tlmctl
bin=$(bazel info bazel-bin 2>/dev/null)

mkdir -p var
if [ ! -s var/model.tlm ]; then
  echo "tune: pretraining the language model on bert_base and resnet_50 programs (once; log var/pretrain.log)"
  "$bin/server/tlmd" pretrain --out=var/model.tlm --networks=bert_base,resnet_50 \
    --per_task=128 --steps="${TLM_PRETRAIN_STEPS:-400}" >var/pretrain.log 2>&1 ||
    { tail -n 20 var/pretrain.log >&2; exit 1; }
  grep "pretrain done" var/pretrain.log | sed 's/^.* info /tune: /'
fi

rm -f var/tlmd.port
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$bin/server/tlmd" --listen=127.0.0.1:0 --port_file=var/tlmd.port --db=var/tlmd.db \
  --model=var/model.tlm --finetune_each_round >>var/tlmd.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s var/tlmd.port ] && break; sleep 0.1; done
if [ ! -s var/tlmd.port ]; then
  echo "tune: tlmd did not start; see var/tlmd.log" >&2
  tail -n 20 var/tlmd.log >&2
  exit 1
fi
server="127.0.0.1:$(cat var/tlmd.port)"
echo "tune: tlmd serving on $server with the model var/model.tlm (log var/tlmd.log, dataset var/tlmd.db)"

"$bin/worker/tlm-worker" --server="$server" --backend=cpu >>var/worker.log 2>&1 &
pids+=($!)
echo "tune: cpu worker (LLVM) started (log var/worker.log)"

ctl() { "$bin/client/tlmctl" --server="$server" "$@"; }
rc=0
if [ -n "$workload" ]; then
  # shellcheck disable=SC2086
  ctl tune $workload --epilogue="$epilogue" --trials="$trials" --sampler="$sampler" \
    --name=tune.sh || rc=$?
else
  ctl tune --network="$network" --budget="$budget" --round="$round" --sampler="$sampler" || rc=$?
fi
ctl report --out=var/report.html --title="tlmd: ${workload:-$network} on this machine"
exit "$rc"

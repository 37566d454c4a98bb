#!/usr/bin/env bash
# Held-out evaluation of a whole network, as in the TLM paper: the model
# (pretrained on other networks) tunes every workload of NETWORK in a
# session with fine-tuning after each round, giving every task ROUND more
# programs per round up to TLM_TRIALS each; random search and evolutionary
# search (XGBoost cost model) get BASELINE_TRIALS per task. Prints, per task
# and for the network (sum of weight x best), the best latency after 1, 10,
# 32 and BASELINE_TRIALS measurements per task, and how many measurements
# each method needs to come within 5% of random search's best.
#
#   bench/heldout_networks.sh MODEL.tlm NETWORK [TLM_TRIALS [BASELINE_TRIALS [ROUND]]]
#
# Defaults: 32, 1000, 8. Each method runs on a fresh tlmd and dataset with one
# LLVM CPU worker (pinned with taskset to CPU $CPU when set). TLM_FLAGS adds
# tlmd flags for the tlm run (e.g. "--tlm_temperature=1.2"); METHODS picks
# the methods run (default "tlm random evolutionary"; the tables need
# random). Run by hand from the repository root after
# `bazel build -c opt //server:tlmd //worker:tlm-worker //client:tlmctl`.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
model=$1 network=$2 tlm_trials=${3:-32} baseline_trials=${4:-1000} round=${5:-8}
bin=bazel-bin
dir=$(mktemp -d /tmp/heldout.XXXXXX)
pin=()
if [ -n "${CPU:-}" ]; then pin=(taskset -c "$CPU"); fi

pids=()
stop() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop EXIT

# run METHOD SAMPLER TRIALS_PER_TASK ROUND [TLMD FLAGS...]
run() {
  local method=$1 sampler=$2 per_task=$3 per_round=$4
  shift 4
  local d="$dir/$method"
  mkdir -p "$d"
  "$bin/server/tlmd" --listen=127.0.0.1:0 --port_file="$d/port" --db="$d/tlmd.db" "$@" \
    >"$d/tlmd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$d/port" ] && break; sleep 0.1; done
  local server="127.0.0.1:$(cat "$d/port")"
  "${pin[@]}" "$bin/worker/tlm-worker" --server="$server" --backend=cpu --threads=1 \
    >"$d/worker.log" 2>&1 &
  pids+=($!)
  local t0
  t0=$(date +%s)
  # --trials per task in rounds of --round to every task (at most 1000 tasks).
  "$bin/client/tlmctl" --server="$server" tune --network="$network" --no-baseline \
    --sampler="$sampler" --seed=1 --name="$method" --trials="$per_task" --round="$per_round" \
    --tasks-per-round=1000 >"$d/session.txt"
  echo "$method: $(grep -o '[0-9]* measurements)' "$d/session.txt" | head -1 | cut -d' ' -f1)" \
    "measurements in $(($(date +%s) - t0)) s; fine-tuning rounds:" \
    "$(grep -c 'fine-tuning round' "$d/tlmd.log" || true); $(grep '^rounds:' "$d/session.txt")"
  stop
}

cp "$model" "$dir/model.tlm"
for method in ${METHODS:-tlm random evolutionary}; do
  if [ "$method" = tlm ]; then
    # shellcheck disable=SC2086
    run tlm tlm "$tlm_trials" "$round" --model="$dir/model.tlm" --finetune_each_round \
      ${TLM_FLAGS:-}
  else
    run "$method" "$method" "$baseline_trials" "$baseline_trials"
  fi
done
[ -f "$dir/random/session.txt" ] || { echo "datasets and logs: $dir"; exit 0; }

python3 - "$dir" "$tlm_trials" "$baseline_trials" <<'EOF'
import os, re, sqlite3, sys
d, tlm_trials, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
methods = [m for m in ["tlm", "random", "evolutionary"] if os.path.exists(f"{d}/{m}/session.txt")]

def curves(method):
    """Per task name: (weight, best latency after each measurement)."""
    weights = {}
    for line in open(f"{d}/{method}/session.txt"):
        m = re.match(r"^\d+\s+(\S+)\s+(\d+)\s", line)
        if m:
            weights[m.group(1)] = int(m.group(2))
    db = sqlite3.connect(f"{d}/{method}/tlmd.db")
    out = {}
    for name, weight in weights.items():
        rows = db.execute(
            "SELECT m.error_kind, m.median_seconds FROM measurements m "
            "JOIN programs p ON p.id = m.program_id JOIN tasks t ON t.id = p.task_id "
            "WHERE t.name = ? ORDER BY m.id", (f"{method}/{name}",)).fetchall()
        best, curve = float("inf"), []
        for kind, seconds in rows:
            if kind == 1:
                best = min(best, seconds)
            curve.append(best)
        out[name] = (weight, curve)
    return out

data = {m: curves(m) for m in methods}
tasks = list(data["random"].keys())

def at(method, name, k):
    curve = data[method][name][1]
    return curve[min(k, len(curve)) - 1] if curve else float("inf")

cols = [("tlm", 1), ("tlm", 10), ("tlm", tlm_trials), ("random", 10), ("random", tlm_trials),
        ("random", base), ("evolutionary", 10), ("evolutionary", tlm_trials),
        ("evolutionary", base)]
cols = [c for c in cols if c[0] in methods]
header = f"{'task':<20} {'weight':>6} " + " ".join(f"{m[:4]}@{k:<5}" for m, k in cols)
print("best latency (ms) after k measurements per task")
print(header)
for name in tasks:
    w = data["random"][name][0]
    print(f"{name:<20} {w:>6} " + " ".join(f"{1e3 * at(m, name, k):>10.4f}" for m, k in cols))
net = lambda m, k: sum(data[m][n][0] * at(m, n, k) for n in tasks)
print(f"{'network (sum w x best)':<27} " + " ".join(f"{1e3 * net(m, k):>10.4f}" for m, k in cols))

print(f"\nmeasurements to come within 5% of random's best after {base} (per task)")
print(f"{'task':<20} " + " ".join(f"{m:>13}" for m in methods))
for name in tasks:
    target = at("random", name, base) / 0.95
    cells = []
    for m in methods:
        curve = data[m][name][1]
        k = next((i + 1 for i, b in enumerate(curve) if b <= target), None)
        cells.append(f"{k if k else 'never in ' + str(len(curve)):>13}")
    print(f"{name:<20} " + " ".join(cells))
EOF
echo "datasets and logs: $dir"

#!/usr/bin/env bash
# The learned-placement experiment, end to end: record a dataset on two scenarios, train the
# models, evaluate them against the hand-written policies on held-out scenarios and seeds.
# Usage: learn/scripts/experiment.sh [OUT_DIR]   (default /tmp/novacron-learn; ~15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/novacron-target}"
OUT="${1:-/tmp/novacron-learn}"
mkdir -p "$OUT"
cargo build --release -p learn
L="$CARGO_TARGET_DIR/release/learn"

# Training data: spot-storm and burst, seeds 1-5, four behaviour policies (for varied states).
# Interruptions cost $0.1 in the target (the simulator's own bill has no penalty; see README).
"$L" dataset scenarios/spot-storm.toml scenarios/burst.toml --seeds 1..6 \
  --policy cost-optimized --policy price-capacity-optimized --policy lowest-price --policy diversified \
  --interruption-penalty 0.1 --out "$OUT/train.parquet"

for m in linear tree logistic mlp bandit boosted; do
  "$L" train --data "$OUT/train.parquet" --model "$m" --out "$OUT/$m.json"
done

# Held out: three scenarios never trained on, and unseen seeds of the training scenarios.
"$L" evaluate scenarios/trace-replay.toml scenarios/regional-outage.toml scenarios/cost-optimized.toml \
  scenarios/spot-storm.toml scenarios/burst.toml --seeds 100..110 \
  --baseline cost-optimized --baseline lowest-price --baseline price-capacity-optimized --baseline balanced \
  --model "$OUT/linear.json" --model "$OUT/tree.json" --model "$OUT/logistic.json" --model "$OUT/mlp.json" --model "$OUT/bandit.json" --model "$OUT/boosted.json" \
  --json "$OUT/evaluation.json" | tee "$OUT/evaluation.md"

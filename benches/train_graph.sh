#!/usr/bin/env bash
# Training throughput on cifar10's DEPA model graph: ccr vs PyTorch and ccr DP-SGD vs Opacus, in
# one run on this machine. usage: benches/train_graph.sh [EPOCHS] [BATCH] [N]
# (PYTHON: a Python with torch and opacus; ../shared/depa must be present)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-2}; BATCH=${2:-16}; N=${3:-2048}; PYTHON=${PYTHON:-python3}
cargo build --release -p ccr-benches --bin train-graph >/dev/null 2>&1
./target/release/train-graph "$EPOCHS" "$BATCH" "$N"
"$PYTHON" benches/py/train_graph_torch.py target ../shared/depa "$EPOCHS" "$BATCH"

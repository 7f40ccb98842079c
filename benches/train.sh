#!/usr/bin/env bash
# Training throughput, ccr vs PyTorch and ccr DP-SGD vs Opacus, in one run on this machine.
# usage: benches/train.sh [EPOCHS] [BATCH] [HIDDEN]    (PYTHON: a Python with torch and opacus)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-50}; BATCH=${2:-64}; HIDDEN=${3:-128}; PYTHON=${PYTHON:-python3}
cargo build --release -p ccr-benches --bin train >/dev/null 2>&1
./target/release/train "$EPOCHS" "$BATCH" "$HIDDEN"
"$PYTHON" benches/py/train_torch.py target "$EPOCHS" "$BATCH" "$HIDDEN" | grep -v '^|.*---'

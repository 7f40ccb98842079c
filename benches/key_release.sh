#!/usr/bin/env bash
# Key release wall time: hospital A's key whole at one service (the ccr broker, the Key Vault
# stand-in, the Cloud KMS stand-in) against the same key split 2-of-3 across the three (issue
# 17's benchmark; figures in BENCHMARKS.md). The bench is runtime/benches/key_release.rs: it
# runs ccr-init's breast-cancer job ROUNDS times per layout, the layouts in turn, and reads the
# `release` step's seconds from the log.
#
# The dev profile builds every dependency at opt-level 3 (Cargo.toml), so TLS, RSA, ECDSA and
# the stand-ins run optimised; ccr's own crates are unoptimised, as in the tests.
# Usage: benches/key_release.sh [ROUNDS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-20}
cargo build --locked -p ccr-cli -p ccr-runtime --bins
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
cargo bench --locked --profile dev -p ccr-runtime --bench key_release -- "$ROUNDS"

#!/usr/bin/env bash
# Load and fault probes of the broker and ccr-init (issue 18; figures in BENCHMARKS.md): 100
# ccr-init at once against one broker, the broker killed and restarted while 20 runs are under
# way, 1,000 malformed requests to each broker endpoint. The probe is benches/probes.py; the
# damaged/locked broker.db and full-file-system faults are tests (runtime/tests/faults.rs).
# Usage: benches/probes.sh [probes.py options, e.g. --runs 100 --restart-runs 20 --malformed 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p ccr-cli -p ccr-runtime --bins
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
python3 benches/probes.py "$@"

#!/usr/bin/env bash
# The main job end to end on the bundled examples, every party's step in order, through
# `ccr scenario run` (which prints each party's `ccr` command as it runs it): the broker operator
# starts the local key broker (accepting the sim platform, for this demo); the parties make
# signing keys, fill in and sign the contract; each data provider seals its data and registers
# the key; the data consumer registers the output key; ccr-init runs the job (platform sim: NOT
# confidential, local demo only); the consumer unseals the model and reads the metrics; the
# broker operator prints the privacy ledger.
#
# A scenario is a folder of files (examples/<name>/: pipeline_config.json, contract.template.json,
# data.json; or DEPA's layout: config/, contract/, scenario.json); nothing here is specific to one.
# Usage: examples/demo.sh [SCENARIO_FOLDER_NAME]...   (default: breast-cancer digits)
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(breast-cancer digits)

# The dev profile shares its build with `cargo test` and compiles every dependency (Burn, ring,
# SQLite) with opt-level 3 (see Cargo.toml), so training runs at full speed.
cargo build --locked -p ccr-runtime -p ccr-cli --bins
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccr-demo.XXXXXX")
echo "== work folder: $WORK"
for s in "${scenarios[@]}"; do
  target/debug/ccr scenario run "examples/$s" --work "$WORK/$s"
done

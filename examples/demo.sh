#!/usr/bin/env bash
# The main job end to end on the bundled example data, every party's step in order:
#   the broker operator starts the local key broker (accepting the sim platform, for this demo);
#   the parties make signing keys, fill in and sign the contract;
#   each data provider seals its CSV into an image and registers the image key with the broker;
#   the data consumer registers the output key;
#   ccr-init runs the job (platform sim: NOT confidential, local demo only);
#   the data consumer unseals the model and reads the metrics;
#   the broker operator prints the privacy ledger.
# Scenarios: breast-cancer (two hospitals, keyed join on patient_id) and digits (three clinics,
# union). Usage: examples/demo.sh [breast-cancer|digits]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(breast-cancer digits)

# The dev profile shares its build with `cargo test` and compiles every dependency (Burn, ring,
# SQLite) with opt-level 3 (see Cargo.toml), so training runs at full speed.
cargo build --locked -p ccr-runtime -p ccr-cli --bins
BIN=$ROOT/target/debug
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ccr-demo.XXXXXX")
BROKER_PID=
cleanup() { [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
echo "== work folder: $WORK"

# Broker operator: a local sim chain (stands in for AMD's) and the broker on a free loopback port.
"$BIN/ccr" sim init --state "$WORK/sim"
"$BIN/ccr" keybroker serve --listen 127.0.0.1:0 --store "$WORK/broker" --sim-roots "$WORK/sim" \
  >"$WORK/broker.out" 2>"$WORK/broker.log" &
BROKER_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/broker/listen.addr" ] && break; sleep 0.1; done
[ -s "$WORK/broker/listen.addr" ] || { cat "$WORK/broker.log"; echo "broker did not start"; exit 1; }
export CCR_BROKER="https://$(cat "$WORK/broker/listen.addr")"
export CCR_BROKER_PIN="$(cat "$WORK/broker/tls.sha256")"
export CCR_ADMIN_TOKEN_FILE="$WORK/broker/admin.token"
echo "== broker at $CCR_BROKER, certificate sha256 $CCR_BROKER_PIN"

# name:dataset-id:owner:file for each data provider of a scenario.
providers() {
  case $1 in
    breast-cancer) echo "hospital_a:bc-hospital-a:hospital-a:breast_cancer_hospital_a.csv hospital_b:bc-hospital-b:hospital-b:breast_cancer_hospital_b.csv" ;;
    digits) echo "clinic_1:digits-clinic-1:clinic-1:digits_clinic_1.csv clinic_2:digits-clinic-2:clinic-2:digits_clinic_2.csv clinic_3:digits-clinic-3:clinic-3:digits_clinic_3.csv" ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
}
output_id() { case $1 in breast-cancer) echo bc-model ;; digits) echo digits-model ;; esac; }

for s in "${scenarios[@]}"; do
  W="$WORK/$s"; mkdir -p "$W/keys" "$W/images" "$W/plain"
  cp "examples/$s/contract.template.json" "$W/contract.json"
  cp "examples/$s/pipeline_config.json" "$W/pipeline_config.json"
  echo "== $s: parties make signing keys and fill in the contract"
  parties="research-lab"
  for p in $(providers "$s"); do parties="$parties $(echo "$p" | cut -d: -f3)"; done
  for party in $parties; do
    "$BIN/ccr" contract keygen --out "$W/keys/$party.sign.pem" >/dev/null
    "$BIN/ccr" contract set-party --contract "$W/contract.json" --party "$party" --key "$W/keys/$party.sign.pem"
  done
  "$BIN/ccr" contract set-pipeline --contract "$W/contract.json" --pipeline "$W/pipeline_config.json" >/dev/null
  # The release policy pins what the sim platform reports for this ccr-init and this contract.
  "$BIN/ccr" policy derive --for sim --contract "$W/contract.json" --init "$BIN/ccr-init" >"$W/policy.json"
  "$BIN/ccr" contract set-policy --contract "$W/contract.json" --policy "$W/policy.json"
  for party in $parties; do
    "$BIN/ccr" contract sign --contract "$W/contract.json" --party "$party" --key "$W/keys/$party.sign.pem"
  done
  "$BIN/ccr" contract verify --contract "$W/contract.json" --pipeline "$W/pipeline_config.json"

  echo "== $s: data providers seal their data and register their keys"
  for p in $(providers "$s"); do
    IFS=: read -r name id owner file <<<"$p"
    mkdir -p "$W/plain/$name" && cp "examples/data/$file" "$W/plain/$name/"
    "$BIN/ccr" keys generate "$W/keys/$id.dek"
    "$BIN/ccr" dataset seal --id "$id" --kid "ccr/dataset/$id" --key "$W/keys/$id.dek" "$W/plain/$name" "$W/images/$name"
    "$BIN/ccr" keys put --kid "ccr/dataset/$id" --key "$W/keys/$id.dek" --contract "$W/contract.json"
    rm -r "$W/plain/$name"
  done
  out=$(output_id "$s")
  echo "== $s: the data consumer registers the output key"
  "$BIN/ccr" keys generate "$W/keys/$out.dek"
  "$BIN/ccr" keys put --kid "ccr/output/$out" --key "$W/keys/$out.dek" --contract "$W/contract.json"

  echo "== $s: ccr-init runs the job"
  # CCR_INIT_WRAPPER, if set, prefixes the command (BENCHMARKS.md uses "/usr/bin/time -v").
  ${CCR_INIT_WRAPPER:-} "$BIN/ccr-init" --platform sim --sim-state "$WORK/sim" --contract "$W/contract.json" \
    --pipeline "$W/pipeline_config.json" --datasets "$W/images" --out "$W/output" 2>"$W/ccr-init.log" \
    || { cat "$W/ccr-init.log"; exit 1; }
  grep '"training complete"' "$W/ccr-init.log"
  [ -n "${CCR_INIT_WRAPPER:-}" ] && grep -E "Elapsed|Maximum resident" "$W/ccr-init.log"

  echo "== $s: the data consumer unseals the model"
  "$BIN/ccr" model unseal --id "$out" --key "$W/keys/$out.dek" "$W/output" "$W/unsealed"
  python3 - "$W/unsealed/metrics.json" "$s" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
t = m["test"]
print(f"{sys.argv[2]}: {m['model']} on {m['rows']['total']} joined rows; held-out n={t['n']}: "
      + ", ".join(f"{k}={v:.4f}" for k, v in t.items() if k != "n"))
PY
done

echo "== broker operator: the privacy ledger (no DP in these pipelines: runs counted, nothing spent)"
"$BIN/ccr" keybroker budget --store "$WORK/broker"

#!/usr/bin/env bash
# Issue 14's benchmark: the breast-cancer job (two providers keyed by patient_id, 15 features
# each, SQL join, LogisticRegression) on N synthetic rows per provider, run by ccr's full job
# (`ccr scenario run`, platform sim: sealing, broker, attestation, key release, decrypt, join,
# train, seal) and by pandas + scikit-learn on the same CSV files, in one run. Prints wall time
# and peak RSS of ccr-init (the job inside the TEE; sealing and unsealing are the parties'
# steps, outside it) and of the Python process, held-out accuracy, and the ratios.
#
# usage: benches/tabular_scale.sh N [lr|xgb]
#   lr (default): Train_ML LogisticRegression vs pandas + scikit-learn's LogisticRegression;
#   xgb: Train_XGB (100 trees, depth 6) vs pandas + the xgboost package (tree_method hist);
#   BIN: the folder with ccr and ccr-init (default target/opt: `cargo build --profile opt`);
#   PYTHON: a Python with numpy, pandas and scikit-learn (default python3);
#   DATA: a folder where the generated CSV files are kept and reused (per N).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
MODEL=${2:-lr}
BIN=${BIN:-target/opt}
PYTHON=${PYTHON:-python3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/scenario"
cp examples/breast-cancer/contract.template.json examples/breast-cancer/pipeline_config.json "$W/scenario/"
PEER=benches/py/tabular_sklearn.py
if [ "$MODEL" = xgb ]; then
  PEER=benches/py/tabular_xgboost.py
  "$PYTHON" - "$W/scenario/pipeline_config.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["pipeline"][1]["name"] = "Train_XGB"
c = p["pipeline"][1]["config"]
for k in ("optimizer", "total_epochs", "batch_size"):
    c.pop(k, None)
c["dataset_config"].pop("preprocessing", None)
c["model_config"] = {"name": "XGBoost", "n_estimators": 100, "max_depth": 6, "learning_rate": 0.3,
                     "l2_regularization": 1.0, "min_child_weight": 1.0, "objective": "binary:logistic"}
json.dump(p, open(sys.argv[1], "w"), indent=1)
PY
  "$PYTHON" - "$W/scenario/contract.template.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.pop("allowedModelFormats", None)
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
fi
# DATA: a folder to keep the generated files in and reuse (per N), else a temporary one.
if [ -n "${DATA:-}" ]; then
  mkdir -p "$DATA/$N"
  [ -f "$DATA/$N/breast_cancer_hospital_b.csv" ] || "$PYTHON" benches/py/make_tabular.py "$DATA/$N" "$N"
  ln -s "$(cd "$DATA/$N" && pwd)" "$W/data"
else
  "$PYTHON" benches/py/make_tabular.py "$W/data" "$N"
fi
printf '{"hospital_a": "%s", "hospital_b": "%s"}\n' \
  "$W/data/breast_cancer_hospital_a.csv" "$W/data/breast_cancer_hospital_b.csv" > "$W/scenario/data.json"
CCR_INIT_WRAPPER="/usr/bin/time -v -o $W/init.time" \
  "$BIN/ccr" scenario run "$W/scenario" --work "$W/work" --init "$BIN/ccr-init" > "$W/ccr.log" 2>&1 \
  || { tail -20 "$W/ccr.log"; tail -20 "$W/work/ccr-init.log" 2>/dev/null; exit 1; }
/usr/bin/time -v -o "$W/py.time" "$PYTHON" "$PEER" "$W/data" > "$W/py.json"
"$PYTHON" - "$W" "$N" "$MODEL" <<'PY'
import json, re, sys
w, n, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def gnu_time(p):
    t = open(p).read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    return secs, rss
cs, cr = gnu_time(f"{w}/init.time")
ps, pr = gnu_time(f"{w}/py.time")
run = json.load(open(f"{w}/work/unsealed/run.json"))
m = json.load(open(f"{w}/work/unsealed/metrics.json"))
py = json.load(open(f"{w}/py.json"))
steps = run.get("timings_ms", {})
peer = "pandas+xgboost" if model == "xgb" else "pandas+sklearn"
print(f"| model | rows per provider | joined | ccr-init s | peak RSS MB | decrypt / join / train s | accuracy "
      f"| {peer} s | peak RSS MB | read+join s | accuracy | ccr/peer time | ccr/peer RSS |")
print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
dj = " / ".join(f"{steps.get(k, 0) / 1000:.1f}" for k in ("decrypt", "join", "train"))
print(f"| {model} | {n} | {py['rows']} | {cs:.1f} | {cr:.0f} | {dj} | {m['test']['accuracy']:.4f} "
      f"| {ps:.1f} | {pr:.0f} | {py['read_join_s']:.1f} | {py['accuracy']:.4f} "
      f"| {cs / ps:.2f}× | {cr / pr:.2f}× |")
PY

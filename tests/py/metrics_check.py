"""scikit-learn's values of the metrics ccr computes, for runtime/tests/metrics_sklearn.rs.

Reads {"binary": {labels, preds, proba}, "multi": {labels, preds, proba}, "reg": {labels,
preds}} as JSON on stdin (proba: rows of class probabilities) and prints the same shape of
results as the test computes with ccr.
"""
import json
import sys

import numpy as np
from sklearn import metrics as M

d = json.load(sys.stdin)
out = {}
for name in ("binary", "multi"):
    c = d[name]
    y, p = np.array(c["labels"]).astype(int), np.array(c["preds"]).astype(int)
    pr = np.array(c["proba"])
    r = {"accuracy": M.accuracy_score(y, p), "confusion_matrix": M.confusion_matrix(y, p).tolist()}
    averages = ["macro", "micro", "weighted"] + (["binary"] if name == "binary" else [])
    for a in averages:
        r[f"precision_{a}"] = M.precision_score(y, p, average=a, zero_division=0)
        r[f"recall_{a}"] = M.recall_score(y, p, average=a, zero_division=0)
        r[f"f1_{a}"] = M.f1_score(y, p, average=a, zero_division=0)
    rep = M.classification_report(y, p, output_dict=True, zero_division=0)
    r["report"] = {k: v for k, v in rep.items()}
    if name == "binary":
        r["roc_auc"] = M.roc_auc_score(y, pr[:, 1])
        prec, rec, thr = M.precision_recall_curve(y, pr[:, 1])
        r["pr_curve"] = [prec.tolist(), rec.tolist(), thr.tolist()]
        fpr, tpr, _ = M.roc_curve(y, pr[:, 1], drop_intermediate=False)
        r["roc_curve"] = [fpr.tolist(), tpr.tolist()]
    else:
        r["roc_auc_ovr"] = M.roc_auc_score(y, pr, multi_class="ovr")
    out[name] = r
c = d["reg"]
y, p = np.array(c["labels"]), np.array(c["preds"])
out["reg"] = {
    "mse": M.mean_squared_error(y, p),
    "mae": M.mean_absolute_error(y, p),
    "rmse": float(np.sqrt(M.mean_squared_error(y, p))),
    "r2": M.r2_score(y, p),
}
print(json.dumps(out))

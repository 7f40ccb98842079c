"""Synthetic rows for issue 14's tabular benchmark, in the breast-cancer example's shape: two
providers keyed by `patient_id`, 15 numeric features each (`a_0`..`a_14`, `b_0`..`b_14`),
the label `diagnosis_benign` (0/1) with hospital A. The label is a noisy logistic function of
features from both sides, so the join matters. Provider B holds 95% of A's patients (and 5% of
its own), in another order. Deterministic (seeded).

usage: make_tabular.py OUT_DIR N   (numpy)
writes OUT_DIR/breast_cancer_hospital_a.csv and OUT_DIR/breast_cancer_hospital_b.csv
"""
import os
import sys

import numpy as np


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(14)
    ids = np.array([f"P{i:09d}" for i in range(n)])
    a = rng.normal(0.0, 1.0, (n, 15)) * rng.uniform(0.5, 20.0, 15) + rng.uniform(-5, 50, 15)
    b = rng.normal(0.0, 1.0, (n, 15)) * rng.uniform(0.5, 20.0, 15) + rng.uniform(-5, 50, 15)
    za = (a - a.mean(0)) / a.std(0)
    zb = (b - b.mean(0)) / b.std(0)
    w = rng.normal(0.0, 1.0, 30)
    logit = np.concatenate([za, zb], 1) @ w / np.sqrt(30) * 3.0 + rng.logistic(0.0, 1.0, n)
    y = (logit > 0).astype(int)
    os.makedirs(out, exist_ok=True)
    fmt = ["%s"] + ["%.6g"] * 15
    head_a = ",".join(["patient_id"] + [f"a_{k}" for k in range(15)] + ["diagnosis_benign"])
    rows_a = np.empty((n, 17), dtype=object)
    rows_a[:, 0] = ids
    rows_a[:, 1:16] = a
    rows_a[:, 16] = y
    np.savetxt(os.path.join(out, "breast_cancer_hospital_a.csv"), rows_a,
               fmt=fmt + ["%d"], delimiter=",", header=head_a, comments="")
    # B: 95% of A's patients and 5% of others, shuffled.
    keep = rng.random(n) < 0.95
    b_ids = np.concatenate([ids[keep], np.array([f"Q{i:09d}" for i in range(n - keep.sum())])])
    b_rows = np.concatenate([b[keep], rng.normal(0.0, 1.0, (n - keep.sum(), 15))])
    order = rng.permutation(len(b_ids))
    rows_b = np.empty((len(b_ids), 16), dtype=object)
    rows_b[:, 0] = b_ids[order]
    rows_b[:, 1:] = b_rows[order]
    head_b = ",".join(["patient_id"] + [f"b_{k}" for k in range(15)])
    np.savetxt(os.path.join(out, "breast_cancer_hospital_b.csv"), rows_b,
               fmt=fmt, delimiter=",", header=head_b, comments="")


if __name__ == "__main__":
    main()

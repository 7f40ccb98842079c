"""The peer of issue 14's tabular benchmark: pandas + scikit-learn, as their users write it,
on the same two CSV files as ccr's job: read both, inner-merge on patient_id, stratified 80/20
split (random_state 0, as the breast-cancer pipeline), StandardScaler fitted on the training
rows, LogisticRegression with scikit-learn's defaults (lbfgs, L2, C = 1), held-out accuracy.

usage: tabular_sklearn.py DATA_DIR   (pandas, scikit-learn); prints one JSON object
"""
import json
import os
import sys
import time

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

t0 = time.perf_counter()
d = sys.argv[1]
a = pd.read_csv(os.path.join(d, "breast_cancer_hospital_a.csv"))
b = pd.read_csv(os.path.join(d, "breast_cancer_hospital_b.csv"))
joined = a.merge(b, on="patient_id", how="inner")
t_join = time.perf_counter()
y = joined.pop("diagnosis_benign").to_numpy()
x = joined.drop(columns=["patient_id"]).to_numpy()
xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
scaler = StandardScaler().fit(xtr)
model = LogisticRegression().fit(scaler.transform(xtr), ytr)
acc = float((model.predict(scaler.transform(xte)) == yte).mean())
t_end = time.perf_counter()
print(json.dumps({"rows": len(joined), "read_join_s": t_join - t0,
                  "train_s": t_end - t_join, "total_s": t_end - t0, "accuracy": acc}))

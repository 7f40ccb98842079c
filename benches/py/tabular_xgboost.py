"""The XGBoost peer of issue 14's tabular benchmark: pandas + the `xgboost` package, as its
users write it, on the same two CSV files as ccr's Train_XGB job: read both, inner-merge on
patient_id, stratified 80/20 split (random_state 0), XGBClassifier with the pipeline's
parameters (100 trees, max_depth 6, learning_rate 0.3, reg_lambda 1, min_child_weight 1,
tree_method "hist", every core), held-out accuracy.

usage: tabular_xgboost.py DATA_DIR   (pandas, scikit-learn, xgboost); prints one JSON object
"""
import json
import os
import sys
import time

import pandas as pd
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

t0 = time.perf_counter()
d = sys.argv[1]
a = pd.read_csv(os.path.join(d, "breast_cancer_hospital_a.csv"))
b = pd.read_csv(os.path.join(d, "breast_cancer_hospital_b.csv"))
joined = a.merge(b, on="patient_id", how="inner")
t_join = time.perf_counter()
y = joined.pop("diagnosis_benign").to_numpy()
x = joined.drop(columns=["patient_id"]).to_numpy()
xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
model = XGBClassifier(n_estimators=100, max_depth=6, learning_rate=0.3, reg_lambda=1.0,
                      min_child_weight=1.0, tree_method="hist").fit(xtr, ytr)
acc = float((model.predict(xte) == yte).mean())
t_end = time.perf_counter()
print(json.dumps({"rows": len(joined), "read_join_s": t_join - t0,
                  "train_s": t_end - t_join, "total_s": t_end - t0, "accuracy": acc}))

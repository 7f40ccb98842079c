"""scikit-learn's coefficients for ccr's full-batch solver test (runtime/tests/solver_sklearn.rs).

Reads {"x": [[...]], "cases": [{"kind": "logistic"|"linear", "y": [...], "C": c}]} on stdin and
prints, per case, {"coef": [[...]], "intercept": [...]} from LogisticRegression(solver="lbfgs",
C, tol=1e-10, max_iter=10000) or LinearRegression(), fitted on the same rows.
"""
import json
import sys

import numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression

req = json.load(sys.stdin)
x = np.array(req["x"], dtype=np.float64)
out = []
for c in req["cases"]:
    y = np.array(c["y"])
    if c["kind"] == "logistic":
        m = LogisticRegression(C=c["C"], tol=1e-10, max_iter=10000).fit(x, y.astype(int))
    else:
        m = LinearRegression().fit(x, y)
    out.append({"coef": np.atleast_2d(m.coef_).tolist(),
                "intercept": np.atleast_1d(m.intercept_).tolist()})
json.dump(out, sys.stdout)

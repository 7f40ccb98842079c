"""Loads ccr's model.xgb.json with the xgboost package and predicts margins on the test rows;
trains xgboost itself (tree_method hist) with the same parameters on the same training rows and
reports its held-out margins. Input on stdin: {"cases": [{"model": path, "params": {...},
"rounds": N, "x": rows, "y": labels, "x_test": rows}]}; output: [{"loaded": margins,
"trained": margins}] with margins row-major [n, groups]."""
import json
import sys

import numpy as np
import xgboost as xgb

out = []
for c in json.load(sys.stdin)["cases"]:
    nan = lambda rows: np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=np.float32)
    x, xt = nan(c["x"]), nan(c["x_test"])
    loaded = xgb.Booster(model_file=c["model"])
    m_loaded = loaded.predict(xgb.DMatrix(xt, feature_names=loaded.feature_names), output_margin=True)
    params = dict(c["params"], tree_method="hist", max_bin=256, nthread=1)
    trained = xgb.train(params, xgb.DMatrix(x, label=np.array(c["y"], dtype=np.float32)), c["rounds"])
    m_trained = trained.predict(xgb.DMatrix(xt), output_margin=True)
    out.append({"loaded": np.asarray(m_loaded).reshape(len(xt), -1).tolist(),
                "trained": np.asarray(m_trained).reshape(len(xt), -1).tolist()})
print(json.dumps(out))

"""Loads ccr's unsealed model.safetensors with safetensors + numpy, runs the forward pass on the
held-out rows listed in metrics.json (features rebuilt from the example CSVs), and checks that
the predictions and the accuracy equal what the runtime reported.

usage: check_model.py UNSEALED_DIR DATA_DIR bc|digits
"""
import csv
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def rows(path, key):
    with open(path, newline="") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def cnn_front(x, tensors, shape):
    """relu(conv2d 3x3, padding 1) then 2x2 average pooling, flattened, in numpy."""
    c, hh, ww = shape
    img = x.reshape(len(x), c, hh, ww)
    pad = np.pad(img, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w, b = tensors["conv.weight"], tensors["conv.bias"]
    out = np.zeros((len(x), w.shape[0], hh, ww), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            patch = pad[:, :, i:i + hh, j:j + ww]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    out = np.maximum(out + b[None, :, None, None], 0)
    pooled = out.reshape(len(x), w.shape[0], hh // 2, 2, ww // 2, 2).mean(axis=(3, 5))
    return pooled.reshape(len(x), -1).astype(np.float32)


def main() -> int:
    out, data, scenario = sys.argv[1:4]
    metrics = json.load(open(f"{out}/metrics.json"))
    tensors = {}
    with safe_open(f"{out}/model.safetensors", framework="numpy") as f:
        meta = f.metadata()
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    features = json.loads(meta["feature_columns"])
    assert features == metrics["features"], "feature order differs"
    if scenario == "bc":
        a = rows(f"{data}/breast_cancer_hospital_a.csv", "patient_id")
        b = rows(f"{data}/breast_cancer_hospital_b.csv", "patient_id")
        table = {k: {**a[k], **b[k]} for k in a if k in b}
        assert len(table) == metrics["rows"]["total"]
    else:
        table = {}
        for i in (1, 2, 3):
            table.update(rows(f"{data}/digits_clinic_{i}.csv", "sample_id"))
    preds = metrics["test_predictions"]
    x = np.array([[float(table[p["id"]][c]) for c in features] for p in preds], dtype=np.float32)
    x = (x - tensors["scaler.offset"]) / tensors["scaler.scale"]
    n_layers = len([k for k in tensors if k.startswith("layers.") and k.endswith(".weight")])
    h = x
    if "conv.weight" in tensors:
        h = cnn_front(h, tensors, json.loads(meta["input_shape"]))
    for i in range(n_layers):
        h = h @ tensors[f"layers.{i}.weight"].T + tensors[f"layers.{i}.bias"]
        if i + 1 < n_layers:
            h = np.tanh(h) if meta["activation"] == "tanh" else np.maximum(h, 0)
    got = h.argmax(axis=1)
    want = np.array([p["prediction"] for p in preds])
    labels = np.array([p["label"] for p in preds])
    assert np.array_equal(got, want), f"{int((got != want).sum())} predictions differ"
    np.testing.assert_allclose(h, np.array([p["output"] for p in preds]), rtol=1e-4, atol=1e-4)
    if os.path.exists(f"{out}/model.onnx"):
        import onnxruntime as ort
        raw = np.array([[float(table[p["id"]][c]) for c in features] for p in preds], dtype=np.float32)
        sess = ort.InferenceSession(f"{out}/model.onnx", providers=["CPUExecutionProvider"])
        logits, probs = sess.run(["logits", "probabilities"], {"x": raw})
        np.testing.assert_allclose(logits, np.array([p["output"] for p in preds]), rtol=1e-4, atol=1e-4)
        assert np.array_equal(logits.argmax(axis=1), want), "onnxruntime predictions differ"
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        print(f"onnxruntime {ort.__version__}: model.onnx gives the runtime's outputs on {len(preds)} rows")
    acc = float((got == labels).mean())
    reported = metrics["test"]["accuracy"]
    assert abs(acc - reported) < 1e-12, f"accuracy {acc} != reported {reported}"
    print(f"python forward pass: {len(preds)} held-out rows, accuracy {acc:.4f} == reported {reported:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Loads ccr's model.safetensors into the equivalent PyTorch nn.Module (as README and
runtime/src/train.rs describe it), with load_state_dict(strict=True), and checks that it gives
the outputs the runtime reported for the held-out rows.

usage: torch_load.py UNSEALED_DIR DATA_DIR bc|digits
"""
import json
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from check_model import rows  # noqa: E402


class Scaler(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.register_buffer("offset", torch.zeros(d))
        self.register_buffer("scale", torch.ones(d))

    def forward(self, x):
        return (x - self.offset) / self.scale


class CcrModel(nn.Module):
    """ccr's model: scaler, optional CNN front (conv 3x3 padding 1, relu, 2x2 average pooling),
    then Linear layers with relu or tanh between them."""

    def __init__(self, meta, shapes):
        super().__init__()
        d = shapes["scaler.offset"][0]
        self.scaler = Scaler(d)
        self.input_shape = json.loads(meta["input_shape"]) if "input_shape" in meta else None
        if self.input_shape:
            out, cin = shapes["conv.weight"][:2]
            self.conv = nn.Conv2d(cin, out, 3, padding=1)
        n = len([k for k in shapes if k.startswith("layers.") and k.endswith(".weight")])
        self.layers = nn.ModuleList(
            nn.Linear(shapes[f"layers.{i}.weight"][1], shapes[f"layers.{i}.weight"][0]) for i in range(n)
        )
        self.act = torch.tanh if meta["activation"] == "tanh" else torch.relu

    def forward(self, x):
        h = self.scaler(x)
        if self.input_shape:
            h = h.view(-1, *self.input_shape)
            h = F.avg_pool2d(torch.relu(self.conv(h)), 2).flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i + 1 < len(self.layers):
                h = self.act(h)
        return h


def main() -> int:
    out, data, scenario = sys.argv[1:4]
    path = f"{out}/model.safetensors"
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    model = CcrModel(meta, shapes)
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    metrics = json.load(open(f"{out}/metrics.json"))
    features = json.loads(meta["feature_columns"])
    if scenario == "bc":
        a = rows(f"{data}/breast_cancer_hospital_a.csv", "patient_id")
        b = rows(f"{data}/breast_cancer_hospital_b.csv", "patient_id")
        table = {k: {**a[k], **b[k]} for k in a if k in b}
    else:
        table = {}
        for i in (1, 2, 3):
            table.update(rows(f"{data}/digits_clinic_{i}.csv", "sample_id"))
    preds = metrics["test_predictions"]
    x = torch.tensor([[float(table[p["id"]][c]) for c in features] for p in preds], dtype=torch.float32)
    with torch.no_grad():
        y = model(x).numpy()
    np.testing.assert_allclose(y, np.array([p["output"] for p in preds]), rtol=1e-4, atol=1e-4)
    assert np.array_equal(y.argmax(axis=1), np.array([p["prediction"] for p in preds]))
    print(f"torch {torch.__version__}: {type(model).__name__} loaded strictly; outputs equal on {len(preds)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

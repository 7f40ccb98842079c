"""Runs an ONNX model with onnxruntime on deterministic inputs and prints its first output as a
JSON list: x[i] = sin(0.37 i) over the flattened [N, d] batch, or with `ids:V` the token ids
(7 i) mod V.

usage: onnx_outputs.py MODEL N [sin|ids:V]
"""
import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "sin"
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    d = int(np.prod([v for v in inp.shape[1:]]))
    i = np.arange(n * d, dtype=np.float64)
    if mode.startswith("ids:"):
        x = ((7 * i) % int(mode[4:])).astype(np.float32)
    else:
        x = np.sin(0.37 * i).astype(np.float32)
    y = sess.run(None, {inp.name: x.reshape(n, d)})[0]
    print(json.dumps(np.asarray(y, dtype=np.float64).ravel().tolist()))


if __name__ == "__main__":
    main()

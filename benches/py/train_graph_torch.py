"""PyTorch (no DP) and Opacus (DP-SGD) training throughput for cifar10's model graph, built by
DEPA's own ModelFactory from ../shared/depa/cifar10/config/model_config.json, on the images ccr's
`train-graph` bench wrote (target/bench-graph-x.f32, target/bench-graph-y.i64): Adam lr 1e-4,
cross-entropy, the same batch size and epochs. PyTorch: the fastest plain loop, shuffled tensor
batches (no DataLoader). Opacus: its standard make_private (Poisson sampling through its
DataLoader over a TensorDataset), max_grad_norm 1.0, noise_multiplier 1.0. Prints markdown rows
like ccr's bench.

usage: train_graph_torch.py TARGET_DIR DEPA_DIR EPOCHS BATCH
"""
import json
import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore")


def main():
    target, depa, epochs, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, os.path.join(depa, "cifar10", "src"))
    from model_constructor import ModelFactory

    cfg = json.load(open(os.path.join(depa, "cifar10", "config", "model_config.json")))
    x = torch.from_numpy(np.fromfile(os.path.join(target, "bench-graph-x.f32"), dtype="<f4").reshape(-1, 3, 32, 32).copy())
    y = torch.from_numpy(np.fromfile(os.path.join(target, "bench-graph-y.i64"), dtype="<i8").copy())
    n = len(y)
    loss_fn = nn.CrossEntropyLoss()
    torch.manual_seed(0)
    m = ModelFactory.load_from_dict(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss_fn(m(x[idx]), y[idx]).backward()
            opt.step()
    s = time.perf_counter() - t
    print(f"| PyTorch {torch.__version__} (threads {torch.get_num_threads()}) | {n} | {epochs} | {batch} | {s:.2f} | {epochs * n / s:.0f} |")

    import opacus
    from opacus import PrivacyEngine
    torch.manual_seed(0)
    m = ModelFactory.load_from_dict(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    m, opt, dl = PrivacyEngine().make_private(module=m, optimizer=opt, data_loader=dl,
                                              noise_multiplier=1.0, max_grad_norm=1.0, poisson_sampling=True)
    t = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in dl:
            if len(yb) == 0:
                continue
            opt.zero_grad()
            loss_fn(m(xb), yb).backward()
            opt.step()
    s = time.perf_counter() - t
    print(f"| Opacus {opacus.__version__} DP-SGD | {n} | {epochs} | {batch} | {s:.2f} | {epochs * n / s:.0f} |")


if __name__ == "__main__":
    main()

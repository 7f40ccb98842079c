"""PyTorch (no DP) and Opacus (DP-SGD) training throughput on the rows ccr's `train` bench
wrote (target/bench-train-x.f32, target/bench-train-y.i64): the same MLP (64 -> HIDDEN -> 10,
ReLU), Adam lr 1e-3, the same batch size and epochs. Opacus: Poisson sampling, max_grad_norm
1.0, noise_multiplier 1.0 (as ccr's bench). Prints markdown rows like ccr's bench.

usage: train_torch.py TARGET_DIR EPOCHS BATCH HIDDEN
"""
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore")


def model(hidden):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def train(m, opt, dl, loss_fn, epochs):
    """Trains for `epochs` epochs and returns the seconds it took."""
    t = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in dl:
            opt.zero_grad()
            loss_fn(m(xb), yb).backward()
            opt.step()
    return time.perf_counter() - t


def main():
    target, epochs, batch, hidden = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    x = torch.from_numpy(np.fromfile(f"{target}/bench-train-x.f32", dtype="<f4").reshape(-1, 64).copy())
    y = torch.from_numpy(np.fromfile(f"{target}/bench-train-y.i64", dtype="<i8").copy())
    n = len(y)
    ds = torch.utils.data.TensorDataset(x, y)
    loss_fn = nn.CrossEntropyLoss()

    m = model(hidden)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    s = train(m, opt, dl, loss_fn, epochs)
    print(f"| PyTorch {torch.__version__} no DP ({torch.get_num_threads()} threads) | {n} | {epochs} | {batch} | {hidden} | {s:.2f} | {epochs * n / s:.0f} |")

    import opacus
    from opacus import PrivacyEngine

    m = model(hidden)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    pe = PrivacyEngine(accountant="rdp")
    m, opt, dl = pe.make_private(module=m, optimizer=opt, data_loader=dl, noise_multiplier=1.0,
                                 max_grad_norm=1.0, poisson_sampling=True)
    s = train(m, opt, dl, loss_fn, epochs)
    print(f"| Opacus {opacus.__version__} DP-SGD ({torch.get_num_threads()} threads) | {n} | {epochs} | {batch} | {hidden} | {s:.2f} | {epochs * n / s:.0f} |")


if __name__ == "__main__":
    main()

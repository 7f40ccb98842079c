"""PyTorch's own values for ccr's losses and learning-rate schedulers on fixed inputs.

usage: python torch_definitions.py DEPA_UTILITIES_DIR < cases.json > values.json

Losses go through DEPA-Training's LossComposer (`loss_constructor.py` in DEPA_UTILITIES_DIR),
the code DEPA's trainer runs, in float64; a class weight (a tensor PyTorch's losses need, which
the composer cannot build from JSON) through the torch.nn class directly. Each case gives the
loss and its gradient with respect to the outputs. Schedulers: the learning rate of each of
`steps` optimizer steps (the rate in force, then `optimizer.step()`, `scheduler.step()`), and
for ReduceLROnPlateau the rate after each `step(value)`.

runtime/tests/torch_definitions.rs writes the cases and compares ccr's values with these.
"""

import json
import sys
import types

import torch

# DEPA's composer imports monai for its approved namespaces; none of these cases use it.
try:
    import monai.losses  # noqa: F401
except ImportError:
    monai = types.ModuleType("monai")
    monai.losses = types.ModuleType("monai.losses")
    sys.modules["monai"] = monai
    sys.modules["monai.losses"] = monai.losses

sys.path.insert(0, sys.argv[1])
from loss_constructor import LossComposer  # noqa: E402


def loss_value(case):
    out = torch.tensor(case["outputs"], dtype=torch.float64, requires_grad=True)
    if case["target"] == "index":
        target = torch.tensor(case["labels"], dtype=torch.long)
    else:
        target = torch.tensor(case["labels"], dtype=torch.float64).reshape(out.shape)
    cfg = case["config"]
    params = dict(cfg.get("params", {}))
    if "weight" in params:
        params["weight"] = torch.tensor(params["weight"], dtype=torch.float64)
        name = cfg["class"].split(".")[-1]
        loss = getattr(torch.nn, name)(**params)(out, target)
    else:
        loss = LossComposer.load_from_dict(cfg).calculate_loss(out, target)
    loss.backward()
    return {"loss": loss.item(), "grad": out.grad.tolist()}


def schedule(case):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=case["lr"])
    cfg = case["config"]
    cls = getattr(torch.optim.lr_scheduler, cfg["name"])
    sch = cls(opt, **cfg.get("params", {}))
    lrs = []
    if cfg["name"] == "ReduceLROnPlateau":
        for v in case["values"]:
            opt.step()
            sch.step(v)
            lrs.append(opt.param_groups[0]["lr"])
    else:
        for _ in range(case["steps"]):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
    return lrs


cases = json.load(sys.stdin)
json.dump(
    {
        "torch": torch.__version__,
        "losses": [loss_value(c) for c in cases["losses"]],
        "schedules": [schedule(c) for c in cases["schedules"]],
    },
    sys.stdout,
)

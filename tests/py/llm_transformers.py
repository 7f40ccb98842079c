"""transformers' own logits for a model folder (issue 16's cross-check, run where
CCR_TORCH_PYTHON points at a Python with torch and transformers). Same JSON in and out as
llm_reference.py."""

import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    req = json.load(sys.stdin)
    m = AutoModelForCausalLM.from_pretrained(req["model"], dtype=torch.float64).eval()
    with torch.no_grad():
        logits = m(torch.tensor(req["ids"], dtype=torch.long)).logits
    json.dump({"logits": logits.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()

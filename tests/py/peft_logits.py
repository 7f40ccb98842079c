"""PEFT's logits for a base model folder with a LoRA adapter folder (issue 16: the adapter ccr
writes loads in `peft` and gives ccr's logits). Run where CCR_TORCH_PYTHON points at a Python
with torch, transformers and peft. Input (stdin, JSON): {"model": DIR, "adapter": DIR,
"ids": [[...], ...]}; output: {"logits": [...], "adapted": number of LoRA modules loaded}."""

import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def main():
    req = json.load(sys.stdin)
    base = AutoModelForCausalLM.from_pretrained(req["model"], dtype=torch.float32)
    m = PeftModel.from_pretrained(base, req["adapter"]).eval()
    adapted = sum(1 for n, _ in m.named_modules() if n.endswith("lora_A"))
    with torch.no_grad():
        logits = m(torch.tensor(req["ids"], dtype=torch.long)).logits
    json.dump({"logits": logits.tolist(), "adapted": adapted}, sys.stdout)


if __name__ == "__main__":
    main()

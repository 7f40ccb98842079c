"""LoRA training throughput with PyTorch + PEFT on the CPU (the peer of benches/src/lora_train.rs,
issue 16): the same model folder, LoRA on every projection, AdamW, random token batches as
tensors (no DataLoader). `--make DIR` first writes a Llama-shaped model there with transformers
(hidden 512, 8 layers, 8 query and 4 key/value heads, SwiGLU 1408, vocabulary 8192, random
weights).
Usage: python lora_train_peft.py [--make] DIR [BATCH] [SEQ_LEN] [STEPS] [RANK]"""

import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM


def make(d):
    torch.manual_seed(0)
    c = LlamaConfig(vocab_size=8192, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                    num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                    tie_word_embeddings=False)
    LlamaForCausalLM(c).save_pretrained(d, safe_serialization=True)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--make":
        make(args[1])
        args = args[1:]
    d = args[0]
    batch, seq, steps, r = (int(args[i]) if len(args) > i else v for i, v in ((1, 8), (2, 128), (3, 10), (4, 8)))
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    m = get_peft_model(m, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, task_type="CAUSAL_LM",
                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    m.train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, m.config.vocab_size, ((steps + 1) * batch, seq + 1), generator=g)

    def step(i):
        x = data[i * batch:(i + 1) * batch]
        out = m(input_ids=x[:, :-1], labels=x[:, :-1])
        out.loss.backward()
        opt.step()
        opt.zero_grad()

    step(0)
    t = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    s = time.perf_counter() - t
    print(f"PyTorch {torch.__version__} + PEFT LoRA train: batch {batch} x {seq} tokens, {steps} steps, r {r}: "
          f"{batch * seq * steps / s:.0f} tokens/s ({s:.2f} s, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()

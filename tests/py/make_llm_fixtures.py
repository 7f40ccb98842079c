"""Makes the tiny language models of LLM_Finetune's tests (issue 16), once, where `transformers`
is installed; the small files are committed under tests/fixtures/llm/:

- a byte-level BPE tokenizer (`tokenizers`) trained on a small corpus, 384 tokens;
- `llama/`: Llama shape (RMSNorm, rotary embeddings, SwiGLU, grouped-query attention: 4 query
  heads, 2 key/value heads), untied embeddings;
- `qwen2/`: Qwen2 shape (as Llama, with q/k/v biases), tied embeddings (as SmolLM);
- `gpt2/`: GPT-2 (learned positions, LayerNorm, GELU MLP, fused c_attn Conv1D weights);

each with `config.json`, `model.safetensors` and `tokenizer.json` as `save_pretrained` writes
them, weights from `torch.manual_seed(0)` spread wider than transformers' initialisation (see
`spread`). Usage: python tests/py/make_llm_fixtures.py [OUT]
"""

import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "llm")

CORPUS = [
    "the clinic records a patient with a mild fever and a cough",
    "each hospital keeps its own records and shares none of them",
    "a model trained on many datasets learns what one dataset cannot show",
    "question: what is the capital of france? answer: paris",
    "question: what colour is the sky? answer: blue",
    "the quick brown fox jumps over the lazy dog",
    "privacy budgets are spent in epsilon and delta",
    "confidential computing keeps data encrypted while it is used",
] * 20


def tokenizer():
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def spread(model):
    """Weights of a size that makes every parameter matter in the logits (transformers
    initialises matrices with std 0.02, norms at 1 and biases at 0): matrices N(0, 0.2), norm
    weights 1 + N(0, 0.1), biases N(0, 0.1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
            elif "norm" in name or name.split(".")[-2].startswith("ln"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)
    return model.eval()


def save(model, tok, name):
    model = spread(model)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)


def main():
    tok = tokenizer()
    v = tok.get_vocab_size()
    eos = tok.token_to_id("<|endoftext|>")
    common = dict(vocab_size=v, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    save(LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **common)).eval(), tok, "llama")
    torch.manual_seed(0)
    save(Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=True, **common)).eval(), tok, "qwen2")
    torch.manual_seed(0)
    g = GPT2Config(vocab_size=v, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                   bos_token_id=eos, eos_token_id=eos)
    save(GPT2LMHeadModel(g).eval(), tok, "gpt2")
    print("vocab", v, "written to", os.path.abspath(OUT))


if __name__ == "__main__":
    main()

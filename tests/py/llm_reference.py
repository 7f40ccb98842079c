"""A NumPy forward pass of the decoder language models ccr fine-tunes (issue 16), read straight
from a Hugging Face folder (`config.json`, `model.safetensors`), written from the architectures'
definitions, not from ccr's code: the reference ccr's logits are checked against in CI.

Llama family (`llama`, `mistral`, `qwen2`): RMSNorm, rotary embeddings (rotate-half form, as
transformers' `apply_rotary_pos_emb`), grouped-query attention, SwiGLU, optional q/k/v biases
(Qwen2), tied or untied `lm_head`. GPT-2: learned positions, LayerNorm, fused `c_attn` Conv1D
weights (in x out), GELU (tanh form, `gelu_new`), tied `lm_head`.

Input (stdin, JSON): {"model": DIR, "ids": [[token ids], ...]} (equal lengths);
output (stdout, JSON): {"logits": [batch][position][vocab]} as float64 lists.
"""

import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    m = x.mean(axis=-1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def causal_attention(q, k, v):
    """q [B, h, T, d], k and v [B, h, T, d] -> [B, h, T, d]."""
    t = q.shape[2]
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    s = s + np.triu(np.full((t, t), -np.inf), 1)
    return softmax(s) @ v


def rope_theta(c):
    return c.get("rope_theta") or c.get("rope_parameters", {}).get("rope_theta", 10000.0)


def llama(c, w, ids):
    hs, nh = c["hidden_size"], c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    hd = c.get("head_dim") or hs // nh
    eps = c["rms_norm_eps"]
    b, t = ids.shape
    inv = 1.0 / rope_theta(c) ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    f = np.outer(np.arange(t, dtype=np.float64), inv)
    emb = np.concatenate([f, f], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)

    def rope(x):  # [B, h, T, d]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        return x * cos + np.concatenate([-x2, x1], axis=-1) * sin

    def lin(h, name):
        y = h @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    x = w["model.embed_tokens.weight"][ids].astype(np.float64)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").reshape(b, t, nh, hd).transpose(0, 2, 1, 3)
        k = lin(h, p + "self_attn.k_proj").reshape(b, t, nkv, hd).transpose(0, 2, 1, 3)
        v = lin(h, p + "self_attn.v_proj").reshape(b, t, nkv, hd).transpose(0, 2, 1, 3)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, nh // nkv, axis=1), np.repeat(v, nh // nkv, axis=1)
        a = causal_attention(q, k, v).transpose(0, 2, 1, 3).reshape(b, t, nh * hd)
        x = x + lin(a, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj")
        x = x + lin(g / (1.0 + np.exp(-g)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def gpt2(c, w, ids):
    hs, nh = c["n_embd"], c["n_head"]
    hd, eps = hs // nh, c["layer_norm_epsilon"]
    b, t = ids.shape
    x = (w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:t]).astype(np.float64)

    def gelu(y):
        return 0.5 * y * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (y + 0.044715 * y**3)))

    def conv1d(h, name):
        return h @ w[name + ".weight"] + w[name + ".bias"]

    for i in range(c["n_layer"]):
        p = f"transformer.h.{i}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = conv1d(h, p + "attn.c_attn")
        q, k, v = (qkv[..., j * hs : (j + 1) * hs].reshape(b, t, nh, hd).transpose(0, 2, 1, 3) for j in range(3))
        a = causal_attention(q, k, v).transpose(0, 2, 1, 3).reshape(b, t, hs)
        x = x + conv1d(a, p + "attn.c_proj")
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        x = x + conv1d(gelu(conv1d(h, p + "mlp.c_fc")), p + "mlp.c_proj")
    x = layer_norm(x, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return x @ w["transformer.wte.weight"].T


def main():
    req = json.load(sys.stdin)
    d = req["model"]
    c = json.load(open(os.path.join(d, "config.json")))
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    ids = np.array(req["ids"], dtype=np.int64)
    kind = c["model_type"]
    logits = gpt2(c, w, ids) if kind == "gpt2" else llama(c, w, ids)
    json.dump({"logits": logits.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()

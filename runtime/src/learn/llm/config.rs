//! A causal language model's `config.json` as Hugging Face `transformers` writes it, for the
//! architectures ccr runs: the Llama family (`llama`, `mistral`, `qwen2`: RMSNorm, rotary
//! embeddings, SwiGLU, grouped-query attention; SmolLM is `llama`-shaped) and `gpt2`.

use serde_json::Value;

use super::LlmError;

/// The shape of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaShape {
    /// `model_type` as written (`llama`, `mistral`, `qwen2`).
    pub model_type: String,
    /// Tokens in the vocabulary (`vocab_size`).
    pub vocab: usize,
    /// Residual width (`hidden_size`).
    pub hidden: usize,
    /// SwiGLU width (`intermediate_size`).
    pub intermediate: usize,
    /// Decoder layers (`num_hidden_layers`).
    pub layers: usize,
    /// Query heads (`num_attention_heads`).
    pub heads: usize,
    /// Key/value heads (`num_key_value_heads`, default `heads`): grouped-query attention when
    /// fewer.
    pub kv_heads: usize,
    /// Width of one head (`head_dim`, default `hidden / heads`).
    pub head_dim: usize,
    /// RMSNorm's epsilon (`rms_norm_eps`).
    pub rms_eps: f64,
    /// Rotary base (`rope_theta`, or `rope_parameters.rope_theta` as transformers 5 writes it).
    pub rope_theta: f64,
    /// Whether `lm_head` is the embedding matrix (`tie_word_embeddings`).
    pub tied: bool,
    /// q/k/v projections carry biases (`attention_bias`; always for `qwen2`).
    pub qkv_bias: bool,
    /// Longest sequence (`max_position_embeddings`).
    pub max_positions: usize,
}

/// The shape of a GPT-2 decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpt2Shape {
    /// Tokens in the vocabulary (`vocab_size`).
    pub vocab: usize,
    /// Residual width (`n_embd`).
    pub hidden: usize,
    /// MLP width (`n_inner`, default `4 × n_embd`).
    pub inner: usize,
    /// Decoder blocks (`n_layer`).
    pub layers: usize,
    /// Attention heads (`n_head`).
    pub heads: usize,
    /// Learned positions (`n_positions`): the longest sequence.
    pub max_positions: usize,
    /// LayerNorm's epsilon (`layer_norm_epsilon`).
    pub eps: f64,
}

/// An architecture ccr runs, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmConfig {
    /// `llama`, `mistral`, `qwen2`.
    Llama(LlamaShape),
    /// `gpt2`.
    Gpt2(Gpt2Shape),
}

fn num(c: &Value, field: &str) -> Result<usize, LlmError> {
    c.get(field)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| LlmError::Config {
            field: field.into(),
            reason: "missing, or not a positive integer".into(),
        })
}

fn opt_num(c: &Value, field: &str) -> Result<Option<usize>, LlmError> {
    match c.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => num(c, field).map(Some),
    }
}

fn float(c: &Value, field: &str, default: f64) -> Result<f64, LlmError> {
    match c.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| LlmError::Config {
                field: field.into(),
                reason: "not a positive number".into(),
            }),
    }
}

impl LlmConfig {
    /// Reads `config.json`.
    ///
    /// # Errors
    /// [`LlmError::Config`] naming the field: JSON that does not parse, a `model_type` other
    /// than `llama`, `mistral`, `qwen2` or `gpt2`, a missing or non-positive size, heads that
    /// do not divide the width, a `hidden_act` other than SiLU (Llama family) or GELU (GPT-2),
    /// sliding-window attention or scaled rotary embeddings (not run).
    pub fn from_json(bytes: &[u8]) -> Result<Self, LlmError> {
        let c: Value = serde_json::from_slice(bytes).map_err(|e| LlmError::Config {
            field: "config.json".into(),
            reason: e.to_string(),
        })?;
        let kind = c.get("model_type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "llama" | "mistral" | "qwen2" => Self::llama(&c, kind),
            "gpt2" => Self::gpt2(&c),
            other => Err(LlmError::Config {
                field: "model_type".into(),
                reason: format!(
                    "`{other}`: ccr runs llama, mistral, qwen2 (and SmolLM, llama-shaped) and gpt2"
                ),
            }),
        }
    }

    fn llama(c: &Value, kind: &str) -> Result<Self, LlmError> {
        let hidden = num(c, "hidden_size")?;
        let heads = num(c, "num_attention_heads")?;
        let kv_heads = opt_num(c, "num_key_value_heads")?.unwrap_or(heads);
        let head_dim = opt_num(c, "head_dim")?.unwrap_or(hidden / heads);
        let bad = |field: &str, reason: String| LlmError::Config {
            field: field.into(),
            reason,
        };
        if !heads.is_multiple_of(kv_heads) {
            return Err(bad(
                "num_key_value_heads",
                format!("{kv_heads} does not divide num_attention_heads {heads}"),
            ));
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(bad(
                "head_dim",
                format!("{head_dim}: rotary embeddings need an even, non-zero head width"),
            ));
        }
        let act = c
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("silu");
        if act != "silu" {
            return Err(bad(
                "hidden_act",
                format!("`{act}`: the Llama family's MLP is SwiGLU (silu)"),
            ));
        }
        let rope = c.get("rope_parameters").or_else(|| c.get("rope_scaling"));
        if let Some(t) = rope
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .and_then(Value::as_str)
            .filter(|t| *t != "default")
        {
            return Err(bad(
                "rope_scaling",
                format!("rope_type `{t}`: ccr runs the default rotary embeddings"),
            ));
        }
        if c.get("sliding_window").is_some_and(|w| !w.is_null())
            && c.get("use_sliding_window").and_then(Value::as_bool) != Some(false)
            && kind == "mistral"
        {
            return Err(bad(
                "sliding_window",
                "sliding-window attention is not run (set it to null)".into(),
            ));
        }
        let theta = match c.get("rope_theta") {
            Some(_) => float(c, "rope_theta", 10000.0)?,
            None => rope
                .and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64)
                .unwrap_or(10000.0),
        };
        Ok(Self::Llama(LlamaShape {
            model_type: kind.to_string(),
            vocab: num(c, "vocab_size")?,
            hidden,
            intermediate: num(c, "intermediate_size")?,
            layers: num(c, "num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            rms_eps: float(c, "rms_norm_eps", 1e-6)?,
            rope_theta: theta,
            tied: c
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            qkv_bias: kind == "qwen2"
                || c.get("attention_bias").and_then(Value::as_bool) == Some(true),
            max_positions: opt_num(c, "max_position_embeddings")?.unwrap_or(2048),
        }))
    }

    fn gpt2(c: &Value) -> Result<Self, LlmError> {
        let hidden = num(c, "n_embd")?;
        let heads = num(c, "n_head")?;
        if !hidden.is_multiple_of(heads) {
            return Err(LlmError::Config {
                field: "n_head".into(),
                reason: format!("{heads} does not divide n_embd {hidden}"),
            });
        }
        let act = c
            .get("activation_function")
            .and_then(Value::as_str)
            .unwrap_or("gelu_new");
        if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
            return Err(LlmError::Config {
                field: "activation_function".into(),
                reason: format!("`{act}`: ccr runs GPT-2's gelu_new"),
            });
        }
        Ok(Self::Gpt2(Gpt2Shape {
            vocab: num(c, "vocab_size")?,
            hidden,
            inner: opt_num(c, "n_inner")?.unwrap_or(4 * hidden),
            layers: num(c, "n_layer")?,
            heads,
            max_positions: num(c, "n_positions")?,
            eps: float(c, "layer_norm_epsilon", 1e-5)?,
        }))
    }

    /// `model_type` (`llama`, `mistral`, `qwen2`, `gpt2`).
    pub fn model_type(&self) -> &str {
        match self {
            Self::Llama(s) => &s.model_type,
            Self::Gpt2(_) => "gpt2",
        }
    }

    /// The vocabulary size (`vocab_size`).
    pub fn vocab(&self) -> usize {
        match self {
            Self::Llama(s) => s.vocab,
            Self::Gpt2(s) => s.vocab,
        }
    }

    /// The longest sequence the model takes.
    pub fn max_positions(&self) -> usize {
        match self {
            Self::Llama(s) => s.max_positions,
            Self::Gpt2(s) => s.max_positions,
        }
    }

    /// Every tensor the model's safetensors must hold, by Hugging Face's name, with its shape
    /// as stored (`[out, in]` for a Llama linear layer, `[in, out]` for a GPT-2 Conv1D).
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut t = Vec::new();
        match self {
            Self::Llama(s) => {
                let (h, kv) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
                t.push(("model.embed_tokens.weight".into(), vec![s.vocab, s.hidden]));
                for i in 0..s.layers {
                    let p = format!("model.layers.{i}.");
                    t.push((format!("{p}input_layernorm.weight"), vec![s.hidden]));
                    t.push((format!("{p}self_attn.q_proj.weight"), vec![h, s.hidden]));
                    t.push((format!("{p}self_attn.k_proj.weight"), vec![kv, s.hidden]));
                    t.push((format!("{p}self_attn.v_proj.weight"), vec![kv, s.hidden]));
                    if s.qkv_bias {
                        t.push((format!("{p}self_attn.q_proj.bias"), vec![h]));
                        t.push((format!("{p}self_attn.k_proj.bias"), vec![kv]));
                        t.push((format!("{p}self_attn.v_proj.bias"), vec![kv]));
                    }
                    t.push((format!("{p}self_attn.o_proj.weight"), vec![s.hidden, h]));
                    t.push((
                        format!("{p}post_attention_layernorm.weight"),
                        vec![s.hidden],
                    ));
                    t.push((
                        format!("{p}mlp.gate_proj.weight"),
                        vec![s.intermediate, s.hidden],
                    ));
                    t.push((
                        format!("{p}mlp.up_proj.weight"),
                        vec![s.intermediate, s.hidden],
                    ));
                    t.push((
                        format!("{p}mlp.down_proj.weight"),
                        vec![s.hidden, s.intermediate],
                    ));
                }
                t.push(("model.norm.weight".into(), vec![s.hidden]));
                if !s.tied {
                    t.push(("lm_head.weight".into(), vec![s.vocab, s.hidden]));
                }
            }
            Self::Gpt2(s) => {
                t.push(("transformer.wte.weight".into(), vec![s.vocab, s.hidden]));
                t.push((
                    "transformer.wpe.weight".into(),
                    vec![s.max_positions, s.hidden],
                ));
                for i in 0..s.layers {
                    let p = format!("transformer.h.{i}.");
                    for ln in ["ln_1", "ln_2"] {
                        t.push((format!("{p}{ln}.weight"), vec![s.hidden]));
                        t.push((format!("{p}{ln}.bias"), vec![s.hidden]));
                    }
                    t.push((
                        format!("{p}attn.c_attn.weight"),
                        vec![s.hidden, 3 * s.hidden],
                    ));
                    t.push((format!("{p}attn.c_attn.bias"), vec![3 * s.hidden]));
                    t.push((format!("{p}attn.c_proj.weight"), vec![s.hidden, s.hidden]));
                    t.push((format!("{p}attn.c_proj.bias"), vec![s.hidden]));
                    t.push((format!("{p}mlp.c_fc.weight"), vec![s.hidden, s.inner]));
                    t.push((format!("{p}mlp.c_fc.bias"), vec![s.inner]));
                    t.push((format!("{p}mlp.c_proj.weight"), vec![s.inner, s.hidden]));
                    t.push((format!("{p}mlp.c_proj.bias"), vec![s.hidden]));
                }
                t.push(("transformer.ln_f.weight".into(), vec![s.hidden]));
                t.push(("transformer.ln_f.bias".into(), vec![s.hidden]));
            }
        }
        t
    }
}

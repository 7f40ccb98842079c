//! The decoder as Burn modules, built from the checked tensors ([`super::weights`]): token ids
//! `[batch, positions]` in, logits `[batch, positions, vocab]` out, causal attention.
//!
//! - Llama family: `x = E[ids]`; per layer `x += o(attn(rope(q(n₁(x))), rope(k(n₁(x))),
//!   v(n₁(x))))`, `x += down(silu(gate(n₂(x))) ⊙ up(n₂(x)))` with RMSNorm `n`; key/value heads
//!   repeated for grouped-query attention; rotary embeddings in the rotate-half form
//!   (`transformers`' `apply_rotary_pos_emb`, frequencies `θ^(-2i/d)`); `logits = lm_head(n(x))`,
//!   `lm_head` the embedding matrix when tied.
//! - GPT-2: `x = wte[ids] + wpe[positions]`; per block `x += c_proj(attn(c_attn(ln₁(x))))`,
//!   `x += c_proj(gelu_tanh(c_fc(ln₂(x))))`; `logits = ln_f(x) · wteᵀ`.
//!
//! Linear layers keep Burn's layout (`[in, out]`): a Llama projection's Hugging Face weight is
//! transposed on load, a GPT-2 Conv1D's is not.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{gelu_approximate, silu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::LlmError;
use super::config::{Gpt2Shape, LlamaShape, LlmConfig};
use super::lora::{LoraConfig, LoraProbe, Proj};
use super::weights::Tensors;

/// A normalisation's parameters: RMSNorm (`bias` none) or LayerNorm.
#[derive(Module, Debug)]
pub struct Norm {
    /// Scale, `[hidden]`.
    pub weight: Param<Tensor<1>>,
    /// Shift, `[hidden]` (LayerNorm only).
    pub bias: Option<Param<Tensor<1>>>,
    /// Epsilon.
    #[module(skip)]
    pub eps: f64,
}

impl Norm {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let w = self.weight.val().unsqueeze::<3>();
        match &self.bias {
            None => {
                let ms = x.clone().square().mean_dim(2);
                x / (ms + self.eps).sqrt() * w
            }
            Some(b) => {
                let mean = x.clone().mean_dim(2);
                let c = x - mean;
                let var = c.clone().square().mean_dim(2);
                c / (var + self.eps).sqrt() * w + b.val().unsqueeze::<3>()
            }
        }
    }
}

/// One Llama-family decoder layer.
#[derive(Module, Debug)]
pub struct LlamaLayer {
    /// `input_layernorm`.
    pub input_norm: Norm,
    /// `self_attn.q_proj`.
    pub q: Proj,
    /// `self_attn.k_proj`.
    pub k: Proj,
    /// `self_attn.v_proj`.
    pub v: Proj,
    /// `self_attn.o_proj`.
    pub o: Proj,
    /// `post_attention_layernorm`.
    pub post_norm: Norm,
    /// `mlp.gate_proj`.
    pub gate: Proj,
    /// `mlp.up_proj`.
    pub up: Proj,
    /// `mlp.down_proj`.
    pub down: Proj,
}

/// One GPT-2 block.
#[derive(Module, Debug)]
pub struct Gpt2Block {
    /// `ln_1`.
    pub ln1: Norm,
    /// `attn.c_attn` (q, k, v fused).
    pub qkv: Proj,
    /// `attn.c_proj`.
    pub proj: Proj,
    /// `ln_2`.
    pub ln2: Norm,
    /// `mlp.c_fc`.
    pub fc: Proj,
    /// `mlp.c_proj`.
    pub fc_proj: Proj,
}

/// The layers of the decoder.
#[derive(Module, Debug)]
pub enum Blocks {
    /// Llama family.
    Llama(Vec<LlamaLayer>),
    /// GPT-2.
    Gpt2(Vec<Gpt2Block>),
}

/// A causal language model.
#[derive(Module, Debug)]
pub struct CausalLm {
    /// Token embeddings `[vocab, hidden]` (`embed_tokens` / `wte`).
    pub embed: Param<Tensor<2>>,
    /// GPT-2's learned positions `[n_positions, hidden]`.
    pub positions: Option<Param<Tensor<2>>>,
    /// The layers.
    pub blocks: Blocks,
    /// The final norm (`model.norm` / `ln_f`).
    pub norm: Norm,
    /// `lm_head` `[hidden, vocab]` when not tied to the embeddings.
    pub head: Option<Linear>,
    /// The architecture and shape.
    #[module(skip)]
    pub config: LlmConfig,
}

fn tensor1(t: &Tensors, name: &str, device: &Device) -> Tensor<1> {
    let (shape, v) = &t[name];
    Tensor::from_data(TensorData::new(v.clone(), [shape[0]]), device)
}

fn tensor2(t: &Tensors, name: &str, device: &Device) -> Tensor<2> {
    let (shape, v) = &t[name];
    Tensor::from_data(TensorData::new(v.clone(), [shape[0], shape[1]]), device)
}

/// A linear layer from a weight stored `[out, in]` (`transpose`) or `[in, out]`.
fn linear(t: &Tensors, prefix: &str, transpose: bool, device: &Device) -> Linear {
    let w = tensor2(t, &format!("{prefix}.weight"), device);
    let bname = format!("{prefix}.bias");
    Linear {
        weight: Param::from_tensor(if transpose { w.transpose() } else { w }),
        bias: t
            .contains_key(&bname)
            .then(|| Param::from_tensor(tensor1(t, &bname, device))),
    }
}

fn norm(t: &Tensors, prefix: &str, bias: bool, eps: f64, device: &Device) -> Norm {
    Norm {
        weight: Param::from_tensor(tensor1(t, &format!("{prefix}.weight"), device)),
        bias: bias.then(|| Param::from_tensor(tensor1(t, &format!("{prefix}.bias"), device))),
        eps,
    }
}

/// Softmax attention with the causal mask: `q` `[B, h, T, d]`, `k`/`v` `[B, h, T, d]`.
fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [_, _, t, d] = q.dims();
    let device = q.device();
    let mask: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e30 } else { 0.0 })
        .collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [t, t]), &device).unsqueeze::<4>();
    let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt() + mask;
    softmax(scores, 3).matmul(v)
}

/// `[B, T, h·d]` → `[B, h, T, d]`.
fn heads(x: Tensor<3>, h: usize, d: usize) -> Tensor<4> {
    let [b, t, _] = x.dims();
    x.reshape([b, t, h, d]).swap_dims(1, 2)
}

/// `[B, h, T, d]` → `[B, T, h·d]`.
fn merge(x: Tensor<4>) -> Tensor<3> {
    let [b, h, t, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, h * d])
}

impl CausalLm {
    /// Every projection LoRA may target, in layer order.
    pub fn projections(&self) -> Vec<&Proj> {
        match &self.blocks {
            Blocks::Llama(ls) => ls
                .iter()
                .flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down])
                .collect(),
            Blocks::Gpt2(bs) => bs
                .iter()
                .flat_map(|b| [&b.qkv, &b.proj, &b.fc, &b.fc_proj])
                .collect(),
        }
    }

    /// Every projection, mutable, in layer order.
    pub fn projections_mut(&mut self) -> Vec<&mut Proj> {
        match &mut self.blocks {
            Blocks::Llama(ls) => ls
                .iter_mut()
                .flat_map(|l| {
                    [
                        &mut l.q,
                        &mut l.k,
                        &mut l.v,
                        &mut l.o,
                        &mut l.gate,
                        &mut l.up,
                        &mut l.down,
                    ]
                })
                .collect(),
            Blocks::Gpt2(bs) => bs
                .iter_mut()
                .flat_map(|b| [&mut b.qkv, &mut b.proj, &mut b.fc, &mut b.fc_proj])
                .collect(),
        }
    }

    /// Sets the seed of the LoRA dropout masks of the next forward passes (`None`: no
    /// dropout, as in evaluation).
    pub fn set_dropout_seed(&mut self, seed: Option<u64>) {
        for p in self.projections_mut() {
            if let Some(l) = &mut p.lora {
                l.mask_seed = seed;
            }
        }
    }

    /// Attaches LoRA adapters to every projection `cfg.target_modules` names; returns how
    /// many.
    ///
    /// # Errors
    /// [`LlmError::Config`] for a target that names no projection of the architecture.
    pub fn attach_lora(
        &mut self,
        cfg: &LoraConfig,
        rng: &mut impl rand::Rng,
        device: &Device,
    ) -> Result<usize, LlmError> {
        super::lora::check_targets(&self.config, &cfg.target_modules)?;
        let mut n = 0;
        for p in self.projections_mut() {
            if cfg.target_modules.iter().any(|t| p.targeted_by(t)) {
                p.attach(cfg, rng, device);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Builds the model from its checked tensors.
    pub fn new(config: &LlmConfig, t: &Tensors, device: &Device) -> Self {
        match config {
            LlmConfig::Llama(s) => {
                let layers = (0..s.layers)
                    .map(|i| {
                        let p = format!("model.layers.{i}.");
                        let l = |n: &str| {
                            let name = format!("{p}{n}");
                            Proj::new(linear(t, &name, true, device), name)
                        };
                        LlamaLayer {
                            input_norm: norm(
                                t,
                                &format!("{p}input_layernorm"),
                                false,
                                s.rms_eps,
                                device,
                            ),
                            q: l("self_attn.q_proj"),
                            k: l("self_attn.k_proj"),
                            v: l("self_attn.v_proj"),
                            o: l("self_attn.o_proj"),
                            post_norm: norm(
                                t,
                                &format!("{p}post_attention_layernorm"),
                                false,
                                s.rms_eps,
                                device,
                            ),
                            gate: l("mlp.gate_proj"),
                            up: l("mlp.up_proj"),
                            down: l("mlp.down_proj"),
                        }
                    })
                    .collect();
                Self {
                    embed: Param::from_tensor(tensor2(t, "model.embed_tokens.weight", device)),
                    positions: None,
                    blocks: Blocks::Llama(layers),
                    norm: norm(t, "model.norm", false, s.rms_eps, device),
                    head: (!s.tied).then(|| linear(t, "lm_head", true, device)),
                    config: config.clone(),
                }
            }
            LlmConfig::Gpt2(s) => {
                let blocks = (0..s.layers)
                    .map(|i| {
                        let p = format!("transformer.h.{i}.");
                        let l = |n: &str| {
                            let name = format!("{p}{n}");
                            Proj::new(linear(t, &name, false, device), name)
                        };
                        Gpt2Block {
                            ln1: norm(t, &format!("{p}ln_1"), true, s.eps, device),
                            qkv: l("attn.c_attn"),
                            proj: l("attn.c_proj"),
                            ln2: norm(t, &format!("{p}ln_2"), true, s.eps, device),
                            fc: l("mlp.c_fc"),
                            fc_proj: l("mlp.c_proj"),
                        }
                    })
                    .collect();
                Self {
                    embed: Param::from_tensor(tensor2(t, "transformer.wte.weight", device)),
                    positions: Some(Param::from_tensor(tensor2(
                        t,
                        "transformer.wpe.weight",
                        device,
                    ))),
                    blocks: Blocks::Gpt2(blocks),
                    norm: norm(t, "transformer.ln_f", true, s.eps, device),
                    head: None,
                    config: config.clone(),
                }
            }
        }
    }

    /// Logits `[B, T, vocab]` for token ids `ids` (`B` rows of `T` ids).
    ///
    /// # Errors
    /// [`LlmError::Input`] for rows of different lengths, an id outside the vocabulary, or
    /// more positions than the model takes.
    pub fn forward(&self, ids: &[Vec<u32>]) -> Result<Tensor<3>, LlmError> {
        self.forward_probed(ids, None)
    }

    /// [`CausalLm::forward`], recording each adapter's [`LoraProbe`] into `probes` (DP-LoRA).
    ///
    /// # Errors
    /// As [`CausalLm::forward`].
    pub fn forward_probed(
        &self,
        ids: &[Vec<u32>],
        mut probes: Option<&mut Vec<LoraProbe>>,
    ) -> Result<Tensor<3>, LlmError> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || ids.iter().any(|r| r.len() != t) {
            return Err(LlmError::Input(
                "token rows must be non-empty and of one length".into(),
            ));
        }
        let vocab = self.config.vocab();
        if let Some(bad) = ids.iter().flatten().find(|&&i| i as usize >= vocab) {
            return Err(LlmError::Input(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        if t > self.config.max_positions() {
            return Err(LlmError::Input(format!(
                "{t} positions; the model takes at most {}",
                self.config.max_positions()
            )));
        }
        let device = self.embed.val().device();
        let flat: Vec<i64> = ids.iter().flatten().map(|&i| i64::from(i)).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * t]), &device);
        let embed = self.embed.val();
        let [_, hidden] = embed.dims();
        let mut x = embed.clone().select(0, idx).reshape([b, t, hidden]);
        match (&self.blocks, &self.config) {
            (Blocks::Llama(layers), LlmConfig::Llama(s)) => {
                let (cos, sin) = rope_tables(s, t, &device);
                for l in layers {
                    x = llama_layer(l, s, x, &cos, &sin, &mut probes);
                }
            }
            (Blocks::Gpt2(blocks), LlmConfig::Gpt2(s)) => {
                if let Some(p) = &self.positions {
                    x = x + p.val().slice([0..t, 0..hidden]).unsqueeze::<3>();
                }
                for blk in blocks {
                    x = gpt2_block(blk, s, x, &mut probes);
                }
            }
            _ => return Err(LlmError::Input("blocks and config disagree".into())),
        }
        let x = self.norm.forward(x);
        Ok(match &self.head {
            Some(h) => h.forward(x),
            None => x.matmul(embed.transpose().unsqueeze::<3>()),
        })
    }
}

/// The rotary tables `cos`, `sin` `[1, 1, T, head_dim]` (each frequency twice: the
/// rotate-half form).
fn rope_tables(s: &LlamaShape, t: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let d = s.head_dim;
    let mut cos = Vec::with_capacity(t * d);
    let mut sin = Vec::with_capacity(t * d);
    for pos in 0..t {
        for j in 0..d {
            let i = (j % (d / 2)) as f64;
            let inv = s.rope_theta.powf(-2.0 * i / d as f64);
            let a = pos as f64 * inv;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    let mk =
        |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [t, d]), device).unsqueeze::<4>();
    (mk(cos), mk(sin))
}

/// `x·cos + rotate_half(x)·sin`, `rotate_half([x₁, x₂]) = [−x₂, x₁]`.
fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, h, t, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
    let rot = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rot * sin.clone()
}

fn llama_layer(
    l: &LlamaLayer,
    s: &LlamaShape,
    x: Tensor<3>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    p: &mut Option<&mut Vec<LoraProbe>>,
) -> Tensor<3> {
    let h = l.input_norm.forward(x.clone());
    let q = rope(
        heads(l.q.forward3(h.clone(), p), s.heads, s.head_dim),
        cos,
        sin,
    );
    let k = rope(
        heads(l.k.forward3(h.clone(), p), s.kv_heads, s.head_dim),
        cos,
        sin,
    );
    let v = heads(l.v.forward3(h, p), s.kv_heads, s.head_dim);
    let (k, v) = if s.kv_heads < s.heads {
        let rep = s.heads / s.kv_heads;
        let repeat = |t: Tensor<4>| {
            let [b, kv, n, d] = t.dims();
            t.unsqueeze_dim::<5>(2)
                .repeat_dim(2, rep)
                .reshape([b, kv * rep, n, d])
        };
        (repeat(k), repeat(v))
    } else {
        (k, v)
    };
    let x = x + l.o.forward3(merge(causal_attention(q, k, v)), p);
    let h = l.post_norm.forward(x.clone());
    let g = silu(l.gate.forward3(h.clone(), p)) * l.up.forward3(h, p);
    x + l.down.forward3(g, p)
}

fn gpt2_block(
    blk: &Gpt2Block,
    s: &Gpt2Shape,
    x: Tensor<3>,
    p: &mut Option<&mut Vec<LoraProbe>>,
) -> Tensor<3> {
    let [b, t, hs] = x.dims();
    let d = hs / s.heads;
    let qkv = blk.qkv.forward3(blk.ln1.forward(x.clone()), p);
    let part = |j: usize| {
        heads(
            qkv.clone().slice([0..b, 0..t, j * hs..(j + 1) * hs]),
            s.heads,
            d,
        )
    };
    let a = causal_attention(part(0), part(1), part(2));
    let x = x + blk.proj.forward3(merge(a), p);
    let h = gelu_approximate(blk.fc.forward3(blk.ln2.forward(x.clone()), p));
    x + blk.fc_proj.forward3(h, p)
}

//! LoRA (Hu et al., 2021) as PEFT configures and saves it: each targeted projection `W` gets
//! `y = xW + (α/r)·x·Aᵀ·Bᵀ` with `A` `[r, in]` (PEFT's default init: Kaiming-uniform,
//! `a = √5`, i.e. `U(−1/√in, 1/√in)`) and `B` `[out, r]` zero, so training starts from the base
//! model. Targets are matched as PEFT matches `target_modules`: a module whose name ends with
//! `.<target>` (`q_proj` matches `model.layers.0.self_attn.q_proj`; GPT-2's `c_proj` matches the
//! attention's and the MLP's).
//!
//! The adapter leaves as PEFT writes it: `adapter_config.json` (`peft_type` `LORA`, `task_type`
//! `CAUSAL_LM`, `r`, `lora_alpha`, `lora_dropout`, `target_modules`, `fan_in_fan_out` for
//! GPT-2's Conv1D) and `adapter_model.safetensors` with `base_model.model.<module>.lora_A.weight`
//! `[r, in]` and `.lora_B.weight` `[out, r]` (F32), so `PeftModel.from_pretrained` loads it.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use serde_json::json;

use super::LlmError;
use super::config::LlmConfig;

/// LoRA's settings (PEFT's `LoraConfig` fields).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank `r`.
    pub r: usize,
    /// `lora_alpha`: the update is scaled by `alpha / r`.
    pub alpha: f64,
    /// `lora_dropout` on the adapter's input while training.
    pub dropout: f64,
    /// `target_modules`: module name suffixes.
    pub target_modules: Vec<String>,
}

/// One adapter: `A` and `B` in Burn's layout (`[in, r]`, `[r, out]`).
#[derive(Module, Debug)]
pub struct Lora {
    /// `A` transposed, `[in, r]`.
    pub a: Param<Tensor<2>>,
    /// `B` transposed, `[r, out]`.
    pub b: Param<Tensor<2>>,
    /// `alpha / r`.
    #[module(skip)]
    pub scale: f64,
    /// `lora_dropout`: the probability that an input feature of the adapter is zeroed while
    /// training (the others scaled by `1 / (1 − p)`), as PEFT's `nn.Dropout` before `A`.
    #[module(skip)]
    pub dropout: f64,
    /// The seed of this step's dropout masks; `None` outside training (no dropout). One seed
    /// gives the same masks in every pass of a step (DP-LoRA's two passes).
    #[module(skip)]
    pub mask_seed: Option<u64>,
}

impl Lora {
    /// The adapter's input: `x`, or `x` with dropout while a mask seed is set. The mask is
    /// drawn from ChaCha8 seeded by the step's seed and the module's name.
    fn input<const D: usize>(&self, x: Tensor<D>, name: &str) -> Tensor<D> {
        let Some(seed) = self.mask_seed.filter(|_| self.dropout > 0.0) else {
            return x;
        };
        use rand::SeedableRng;
        let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ salt);
        let keep = 1.0 - self.dropout;
        let dims = x.dims();
        let n: usize = dims.iter().product();
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.r#gen::<f64>() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let device = x.device();
        x * Tensor::<D>::from_data(TensorData::new(mask, dims), &device)
    }
}

/// What DP-LoRA needs of one adapter in a forward pass: its input `X` `[B, T, in]` and `H = X·A`
/// `[B, T, r]` (detached, plain backend), `B` `[r, out]`, and a zero tensor added to `H·B`
/// (tracked) whose gradient is each sample's `∂L/∂(H·B)`.
#[derive(Debug, Clone)]
pub struct LoraProbe {
    /// The adapter's input.
    pub x: Tensor<3>,
    /// `X·A`.
    pub h: Tensor<3>,
    /// `B` (Burn's layout, `[r, out]`).
    pub b: Tensor<2>,
    /// The probe.
    pub probe: Tensor<3>,
    /// `alpha / r`.
    pub scale: f64,
    /// `A`'s parameter id.
    pub a_id: burn::module::ParamId,
    /// `B`'s parameter id.
    pub b_id: burn::module::ParamId,
}

/// A projection: the base layer, and its adapter when LoRA targets it.
#[derive(Module, Debug)]
pub struct Proj {
    /// The base weights (Burn's `[in, out]` layout).
    pub base: Linear,
    /// The adapter.
    pub lora: Option<Lora>,
    /// The module's Hugging Face name (`model.layers.0.self_attn.q_proj`).
    #[module(skip)]
    pub name: String,
}

impl Proj {
    /// A projection without adapter.
    pub fn new(base: Linear, name: String) -> Self {
        Self {
            base,
            lora: None,
            name,
        }
    }

    /// `xW + b`, plus `(α/r)·x·A·B` with an adapter.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let y = self.base.forward(x.clone());
        match &self.lora {
            None => y,
            Some(l) => {
                let a = l.a.val().unsqueeze::<D>();
                let b = l.b.val().unsqueeze::<D>();
                y + l.input(x, &self.name).matmul(a).matmul(b) * l.scale
            }
        }
    }

    /// [`Proj::forward`] on `[B, T, in]`; with `probes`, the adapter's [`LoraProbe`] recorded.
    pub fn forward3(&self, x: Tensor<3>, probes: &mut Option<&mut Vec<LoraProbe>>) -> Tensor<3> {
        let Some(rec) = probes.as_deref_mut() else {
            return self.forward(x);
        };
        let y = self.base.forward(x.clone());
        let Some(l) = &self.lora else {
            return y;
        };
        let x = l.input(x, &self.name);
        let h = x.clone().matmul(l.a.val().unsqueeze::<3>());
        let z = h.clone().matmul(l.b.val().unsqueeze::<3>());
        let probe = z.zeros_like().require_grad();
        rec.push(LoraProbe {
            x: x.detach(),
            h: h.detach(),
            b: l.b.val().detach(),
            probe: probe.clone(),
            scale: l.scale,
            a_id: l.a.id,
            b_id: l.b.id,
        });
        y + (z + probe) * l.scale
    }

    /// Whether `target` names this module (PEFT's suffix match).
    pub fn targeted_by(&self, target: &str) -> bool {
        self.name == target || self.name.ends_with(&format!(".{target}"))
    }

    /// Adds an adapter initialised as PEFT does (`A` Kaiming-uniform, `B` zero).
    pub fn attach(&mut self, cfg: &LoraConfig, rng: &mut impl Rng, device: &Device) {
        let [din, dout] = self.base.weight.val().dims();
        let bound = 1.0 / (din as f64).sqrt();
        let a: Vec<f32> = (0..din * cfg.r)
            .map(|_| rng.gen_range(-bound..bound) as f32)
            .collect();
        self.lora = Some(Lora {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [din, cfg.r]), device)),
            b: Param::from_tensor(Tensor::zeros([cfg.r, dout], device)),
            scale: cfg.alpha / cfg.r as f64,
            dropout: cfg.dropout,
            mask_seed: None,
        });
    }
}

/// The Llama family's projections, by PEFT's module names.
pub const LLAMA_PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];
/// GPT-2's projections (Conv1D), by PEFT's module names.
pub const GPT2_PROJECTIONS: [&str; 3] = ["c_attn", "c_proj", "c_fc"];

/// The projections LoRA may target in an architecture.
pub fn projection_names(config: &LlmConfig) -> &'static [&'static str] {
    match config {
        LlmConfig::Llama(_) => &LLAMA_PROJECTIONS,
        LlmConfig::Gpt2(_) => &GPT2_PROJECTIONS,
    }
}

/// Checks `target_modules` before training.
///
/// # Errors
/// [`LlmError::Config`] naming a target that matches no projection of the architecture.
pub fn check_targets(config: &LlmConfig, targets: &[String]) -> Result<(), LlmError> {
    let known = projection_names(config);
    if targets.is_empty() {
        return Err(LlmError::Config {
            field: "lora.target_modules".into(),
            reason: format!("empty; this architecture's projections are {known:?}"),
        });
    }
    for t in targets {
        let last = t.rsplit('.').next().unwrap_or(t);
        if !known.contains(&last) {
            return Err(LlmError::Config {
                field: "lora.target_modules".into(),
                reason: format!("`{t}` matches no projection of this architecture ({known:?})"),
            });
        }
    }
    Ok(())
}

/// Writes the adapters of `projs` as PEFT's `adapter_config.json` and
/// `adapter_model.safetensors` into the folder `dir` (which must exist).
///
/// # Errors
/// [`LlmError::Weights`] when a file cannot be written or a tensor read back.
pub fn save_peft<'a>(
    projs: impl Iterator<Item = &'a Proj>,
    config: &LlmConfig,
    cfg: &LoraConfig,
    dir: &Path,
) -> Result<(), LlmError> {
    for (name, bytes) in peft_files(projs, config, cfg)? {
        std::fs::write(dir.join(&name), bytes)
            .map_err(|e| LlmError::Weights(format!("adapter: {name}: {e}")))?;
    }
    Ok(())
}

/// The adapters of `projs` as PEFT's files, in memory: `adapter_model.safetensors` then
/// `adapter_config.json`.
///
/// # Errors
/// [`LlmError::Weights`] when a tensor cannot be read back.
pub fn peft_files<'a>(
    projs: impl Iterator<Item = &'a Proj>,
    config: &LlmConfig,
    cfg: &LoraConfig,
) -> Result<Vec<(String, Vec<u8>)>, LlmError> {
    let werr = |e: &dyn std::fmt::Display| LlmError::Weights(format!("adapter: {e}"));
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for p in projs {
        let Some(l) = &p.lora else { continue };
        let bytes = |t: Tensor<2>| -> Result<(Vec<usize>, Vec<u8>), LlmError> {
            let [r, c] = t.dims();
            let v = t
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| werr(&format!("{e:?}")))?;
            Ok((vec![r, c], v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        };
        // PEFT's layout is the transpose of Burn's: A [r, in], B [out, r].
        let prefix = format!("base_model.model.{}", p.name);
        tensors.insert(
            format!("{prefix}.lora_A.weight"),
            bytes(l.a.val().transpose())?,
        );
        tensors.insert(
            format!("{prefix}.lora_B.weight"),
            bytes(l.b.val().transpose())?,
        );
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (shape, b))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| werr(&e))
        })
        .collect::<Result<_, _>>()?;
    let st = safetensors::serialize(views, None).map_err(|e| werr(&e))?;
    let ac = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": cfg.target_modules,
        "bias": "none",
        "fan_in_fan_out": matches!(config, LlmConfig::Gpt2(_)),
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "base_model_name_or_path": null,
    });
    Ok(vec![
        ("adapter_model.safetensors".into(), st),
        (
            "adapter_config.json".into(),
            serde_json::to_vec_pretty(&ac).map_err(|e| werr(&e))?,
        ),
    ])
}

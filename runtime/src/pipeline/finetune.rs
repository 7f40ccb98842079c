//! `LLM_Finetune`'s config: a pretrained causal language model (Hugging Face's folder layout,
//! each file pinned by SHA-256), fine-tuned with LoRA (PEFT's fields) or in full on the union of
//! the providers' text datasets, optionally with DP-LoRA.
//!
//! ```json
//! {"name": "LLM_Finetune", "config": {
//!   "base_model": {"path": "/mnt/remote/model", "sha256": {"config.json": "…", "tokenizer.json": "…",
//!                  "model.safetensors": "…"}},
//!   "text_field": "text", "prompt_field": "prompt", "completion_field": "completion",
//!   "max_seq_len": 256, "truncation": true, "packing": false,
//!   "method": "lora", "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
//!                              "target_modules": ["q_proj", "v_proj"]},
//!   "test_split": 0.1, "seed": 0, "total_epochs": 3, "batch_size": 8,
//!   "optimizer": {"name": "AdamW", "params": {"lr": 0.0002}},
//!   "is_private": false, "privacy_params": {"epsilon": 8, "delta": 1e-5, "max_grad_norm": 1.0},
//!   "save_merged": false}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{OptimizerConfig, OptimizerName, OptimizerParams};

/// The `LLM_Finetune` step's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The base model folder and the SHA-256 of each of its files.
    pub base_model: BaseModelFolder,
    /// The JSONL field (or CSV column) of plain-text records (loss on every token).
    #[serde(default = "default_text")]
    pub text_field: String,
    /// The field of a prompt (no loss on its tokens).
    #[serde(default = "default_prompt")]
    pub prompt_field: String,
    /// The field of a prompt's completion (the loss is on its tokens and the end-of-sequence
    /// token).
    #[serde(default = "default_completion")]
    pub completion_field: String,
    /// The most tokens of one training sequence (default: 512, or the model's
    /// `max_position_embeddings` when smaller).
    #[serde(default)]
    pub max_seq_len: Option<usize>,
    /// Cut a longer sequence to `max_seq_len` (default); `false`: refuse it.
    #[serde(default = "yes")]
    pub truncation: bool,
    /// Pack plain-text records end to end into sequences of `max_seq_len` tokens (each record
    /// closed by the end-of-sequence token); `false` (default): one record per sequence, each
    /// batch padded to its longest. Prompt/completion records are never packed.
    #[serde(default)]
    pub packing: bool,
    /// `lora` (default): adapters on the projections, the base frozen; `full`: every weight
    /// trained (small models; no DP).
    #[serde(default)]
    pub method: FinetuneMethod,
    /// LoRA's settings (PEFT's `LoraConfig` names).
    #[serde(default)]
    pub lora: LoraFields,
    /// The share of the records held out for the metrics, in (0, 1) (default 0.1).
    #[serde(default = "default_test_split")]
    pub test_split: f64,
    /// Seed of the split, the adapters' initialisation and the batch order (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Passes over the training records (default 3).
    #[serde(default = "default_epochs")]
    pub total_epochs: usize,
    /// Sequences per batch (under DP: the expected batch of Poisson sampling; default 8).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// The optimizer: `AdamW` only (default lr 2e-4, weight decay 0).
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerConfig,
    /// DP-LoRA ([`crate::learn::llm::dp`]): one record (sequence) is the unit of privacy.
    #[serde(default)]
    pub is_private: bool,
    /// With `is_private`: `epsilon`, `delta`, `max_grad_norm`, optional `noise_multiplier`.
    #[serde(default)]
    pub privacy_params: Option<Value>,
    /// Also write the merged weights (`model.safetensors`, the base model's tensor names).
    #[serde(default)]
    pub save_merged: bool,
    /// DEPA's `device` (as the other train steps).
    #[serde(default)]
    pub device: Option<String>,
}

/// Where the base model is and what each of its files must hash to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModelFolder {
    /// The folder in the CCR (default `/mnt/remote/model`; `ccr-init --base-model DIR`
    /// overrides it); in a LUKS2 `baseModelImage`, the folder inside it (`/` for its root).
    #[serde(default)]
    pub path: Option<String>,
    /// SHA-256 (64 lowercase hex) of every file ccr reads, by file name: `config.json`,
    /// `tokenizer.json`, and `model.safetensors` or `model.safetensors.index.json` with its
    /// shards. A file not listed is never read.
    pub sha256: BTreeMap<String, String>,
}

/// `method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinetuneMethod {
    /// LoRA adapters.
    #[default]
    Lora,
    /// Every weight.
    Full,
}

/// `lora`: PEFT's `LoraConfig` fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraFields {
    /// Rank (default 8).
    #[serde(default = "default_r")]
    pub r: usize,
    /// `lora_alpha` (default 8): the update is scaled by `lora_alpha / r`.
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    /// `lora_dropout` in [0, 1) (default 0).
    #[serde(default)]
    pub lora_dropout: f64,
    /// Module name suffixes (default: PEFT's for the architecture: `q_proj`, `v_proj` for the
    /// Llama family, `c_attn` for GPT-2).
    #[serde(default)]
    pub target_modules: Option<Vec<String>>,
    /// PEFT's `bias`: `none` only.
    #[serde(default)]
    pub bias: Option<String>,
    /// PEFT's `task_type`: `CAUSAL_LM` only.
    #[serde(default)]
    pub task_type: Option<String>,
}

impl Default for LoraFields {
    fn default() -> Self {
        Self {
            r: default_r(),
            lora_alpha: default_alpha(),
            lora_dropout: 0.0,
            target_modules: None,
            bias: None,
            task_type: None,
        }
    }
}

fn default_text() -> String {
    "text".into()
}
fn default_prompt() -> String {
    "prompt".into()
}
fn default_completion() -> String {
    "completion".into()
}
fn yes() -> bool {
    true
}
fn default_test_split() -> f64 {
    0.1
}
fn default_epochs() -> usize {
    3
}
fn default_batch() -> usize {
    8
}
fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_optimizer() -> OptimizerConfig {
    OptimizerConfig {
        name: OptimizerName::AdamW,
        params: OptimizerParams {
            lr: 2e-4,
            ..OptimizerParams::default()
        },
    }
}

/// The default folder of the base model in the CCR.
pub const DEFAULT_MODEL_DIR: &str = "/mnt/remote/model";

impl FinetuneConfig {
    /// The base model's folder: `base_model.path` or [`DEFAULT_MODEL_DIR`].
    pub fn model_dir(&self) -> &str {
        self.base_model.path.as_deref().unwrap_or(DEFAULT_MODEL_DIR)
    }

    /// The train-step fields the rest of the job reads of every training step (the privacy
    /// plan, the budgets, epochs and batch size), in [`super::TrainConfig`]'s shape.
    pub(super) fn as_train_config(&self) -> Result<super::TrainConfig, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "dataset_config": {"type": "tabular"},
            "total_epochs": self.total_epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "is_private": self.is_private,
            "privacy_params": self.privacy_params,
            "device": self.device,
            "metrics": [],
        }))
    }
}

/// Checks what serde cannot, naming the path (`pipeline[1].config...`).
pub(super) fn check(c: &FinetuneConfig, p: &str) -> Result<(), super::PipelineError> {
    let bad = |f: &str, r: &str| super::check::field(&format!("{p}.{f}"), r);
    let files = &c.base_model.sha256;
    for need in ["config.json", "tokenizer.json"] {
        if !files.contains_key(need) {
            return Err(bad(
                "base_model.sha256",
                &format!("`{need}` is not pinned (every file ccr reads needs its SHA-256)"),
            ));
        }
    }
    if !files.contains_key("model.safetensors")
        && !files.contains_key("model.safetensors.index.json")
    {
        return Err(bad(
            "base_model.sha256",
            "neither `model.safetensors` nor `model.safetensors.index.json` is pinned",
        ));
    }
    for (name, hex) in files {
        if name.contains('/') || name.contains('\\') || name == ".." || name.is_empty() {
            return Err(bad(
                &format!("base_model.sha256.{name}"),
                "a file name in the model folder (no path)",
            ));
        }
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(
                &format!("base_model.sha256.{name}"),
                "64 lowercase hex digits (SHA-256)",
            ));
        }
    }
    if c.max_seq_len == Some(0) || c.max_seq_len.is_some_and(|n| n < 2) {
        return Err(bad("max_seq_len", "at least 2 tokens"));
    }
    if !(c.test_split > 0.0 && c.test_split < 1.0) {
        return Err(bad("test_split", "a share in (0, 1)"));
    }
    if c.total_epochs == 0 || c.batch_size == 0 {
        return Err(super::check::field(
            p,
            "total_epochs and batch_size must be > 0",
        ));
    }
    if c.optimizer.name != OptimizerName::AdamW {
        return Err(bad("optimizer.name", "LLM_Finetune trains with AdamW"));
    }
    let lr = c.optimizer.params.lr;
    if lr.is_nan() || lr <= 0.0 {
        return Err(bad("optimizer.params.lr", "must be > 0"));
    }
    let l = &c.lora;
    if l.r == 0 {
        return Err(bad("lora.r", "must be > 0"));
    }
    if !(l.lora_alpha > 0.0 && l.lora_alpha.is_finite()) {
        return Err(bad("lora.lora_alpha", "must be > 0"));
    }
    if !(0.0..1.0).contains(&l.lora_dropout) {
        return Err(bad("lora.lora_dropout", "a probability in [0, 1)"));
    }
    if l.bias.as_deref().is_some_and(|b| b != "none") {
        return Err(bad("lora.bias", "ccr trains no biases: \"none\""));
    }
    if l.task_type.as_deref().is_some_and(|t| t != "CAUSAL_LM") {
        return Err(bad("lora.task_type", "LLM_Finetune is \"CAUSAL_LM\""));
    }
    if l.target_modules.as_ref().is_some_and(Vec::is_empty) {
        return Err(bad("lora.target_modules", "empty"));
    }
    if c.is_private && c.method == FinetuneMethod::Full {
        return Err(bad(
            "method",
            "DP (is_private) trains LoRA adapters only: \"lora\"",
        ));
    }
    if let Some(d) = &c.device {
        super::check::device(d)?;
    }
    for (f, v) in [
        ("text_field", &c.text_field),
        ("prompt_field", &c.prompt_field),
        ("completion_field", &c.completion_field),
    ] {
        if v.is_empty() {
            return Err(bad(f, "empty"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Framework, Pipeline, SCHEMA};

    fn example() -> serde_json::Value {
        let p = format!(
            "{}/../examples/llm-finetune/pipeline_config.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn refused(edit: impl Fn(&mut serde_json::Value)) -> String {
        let mut v = example();
        edit(&mut v);
        Pipeline::from_value(&v).unwrap_err().to_string()
    }

    #[test]
    fn the_example_meets_the_schema_and_parses_with_its_shared_fields() {
        let v = example();
        let errors = ccr_policy::schema::errors(SCHEMA, &v);
        assert!(errors.is_empty(), "{errors:?}");
        let p = Pipeline::from_value(&v).unwrap();
        assert_eq!(p.framework, Framework::LlmFinetune);
        let f = p.finetune.as_deref().unwrap();
        assert_eq!(f.lora.r, 8);
        assert_eq!(f.model_dir(), "/mnt/remote/model");
        // Epochs, batch size and DP are where every train step keeps them.
        assert_eq!(p.train.total_epochs, f.total_epochs);
        assert_eq!(p.train.batch_size, 16);
        assert!(!p.train.is_private);
        assert_eq!(p.join.config().datasets.len(), 2);
    }

    #[test]
    fn fields_ccr_cannot_run_are_named_by_path() {
        for (edit, want) in [
            (
                Box::new(|v: &mut serde_json::Value| {
                    v["pipeline"][1]["config"]["lora"]["r"] = json!(0)
                }) as Box<dyn Fn(&mut serde_json::Value)>,
                "pipeline[1].config.lora.r",
            ),
            (
                Box::new(|v| {
                    v["pipeline"][1]["config"]["base_model"]["sha256"]
                        .as_object_mut()
                        .unwrap()
                        .remove("tokenizer.json");
                }),
                "`tokenizer.json` is not pinned",
            ),
            (
                Box::new(|v| {
                    v["pipeline"][1]["config"]["base_model"]["sha256"]["config.json"] = json!("ABC")
                }),
                "base_model.sha256.config.json",
            ),
            (
                Box::new(|v| {
                    v["pipeline"][1]["config"]["method"] = json!("full");
                    v["pipeline"][1]["config"]["is_private"] = json!(true);
                    v["pipeline"][1]["config"]["privacy_params"] =
                        json!({"epsilon": 8, "delta": 1e-5, "max_grad_norm": 1.0});
                }),
                "pipeline[1].config.method",
            ),
            (
                Box::new(|v| {
                    v["pipeline"][1]["config"]["is_private"] = json!(true);
                }),
                "privacy_params",
            ),
            (
                Box::new(|v| v["pipeline"][1]["config"]["optimizer"]["name"] = json!("SGD")),
                "pipeline[1].config.optimizer.name",
            ),
            (
                Box::new(|v| v["pipeline"][1]["config"]["lora"]["lora_dropout"] = json!(1.0)),
                "lora.lora_dropout",
            ),
            (
                Box::new(|v| v["pipeline"][1]["config"]["max_len"] = json!(8)),
                "unknown field `max_len`",
            ),
            (
                Box::new(|v| {
                    v["pipeline"][0]["name"] = json!("SparkJoin");
                    v["pipeline"][0]["config"]["joined_dataset"] =
                        json!({"joining_query": "SELECT * FROM provider_a"});
                }),
                "DirectoryJoin",
            ),
        ] {
            let e = refused(edit);
            assert!(e.contains(want), "`{want}` in: {e}");
        }
    }
}

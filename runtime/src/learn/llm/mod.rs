//! `LLM_Finetune` (issue 16, in progress): decoder language models as Hugging Face writes them
//! (`config.json`, `model.safetensors` or shards, `tokenizer.json`), run in Burn.
//!
//! - [`config`]: the architectures ccr runs (the Llama family: `llama`, `mistral`, `qwen2`,
//!   SmolLM's shape; and `gpt2`) and the tensors each needs;
//! - [`weights`]: the safetensors read and checked against the config, name by name;
//! - [`model`]: the decoder as Burn modules, token ids to logits;
//! - [`lora`]: LoRA adapters on the projections, saved in PEFT's layout.
//!
//! Built so far: loading and the forward pass, checked against a NumPy reference written from
//! the architectures' definitions (`tests/py/llm_reference.py`) and against `transformers`.
//! Still to come: the pipeline step, tokenization, LoRA, DP-LoRA, the GPU path.

pub mod config;
pub mod data;
pub mod dp;
pub mod lora;
pub mod merged;
pub mod model;
pub mod train;
pub mod weights;

use std::path::Path;

use burn::tensor::Device;

pub use config::LlmConfig;
pub use model::CausalLm;

/// What can be wrong with a language model or its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// `config.json` is not one ccr runs.
    #[error("config.json: `{field}`: {reason}")]
    Config {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The weights do not match the config, or cannot be read.
    #[error("weights: {0}")]
    Weights(String),
    /// Token ids the model cannot take.
    #[error("input: {0}")]
    Input(String),
}

/// Reads a model folder (`config.json` and its safetensors) and builds the model on `device`.
///
/// # Errors
/// [`LlmError::Config`] for the config, [`LlmError::Weights`] for missing, misshapen or
/// unreadable tensors.
pub fn load(dir: &Path, device: &Device) -> Result<CausalLm, LlmError> {
    let cpath = dir.join("config.json");
    let bytes = std::fs::read(&cpath).map_err(|e| LlmError::Config {
        field: "config.json".into(),
        reason: format!("{}: {e}", cpath.display()),
    })?;
    let config = LlmConfig::from_json(&bytes)?;
    let tensors = weights::load(dir, &config)?;
    Ok(CausalLm::new(&config, &tensors, device))
}

//! `LLM_Finetune` (issue 16, in progress): decoder language models as Hugging Face writes them
//! (`config.json`, `model.safetensors` or shards, `tokenizer.json`), run in Burn.
//!
//! - [`config`]: the architectures ccr runs (the Llama family: `llama`, `mistral`, `qwen2`,
//!   SmolLM's shape; and `gpt2`) and the tensors each needs;
//! - [`weights`]: the safetensors read and checked against the config, name by name;
//! - [`model`]: the decoder as Burn modules, token ids to logits;
//! - [`lora`]: LoRA adapters on the projections, saved in PEFT's layout.
//!
//! - [`data`]: JSONL and CSV text records, tokenized, packed, split;
//! - [`train`] and [`dp`]: LoRA (or full) fine-tuning with AdamW, and DP-LoRA;
//! - [`merged`]: the adapters merged into the base weights.
//!
//! The forward pass is checked against a NumPy reference written from the architectures'
//! definitions (`tests/py/llm_reference.py`) and against `transformers`; the adapter against
//! `peft`. The pipeline step that runs all this is `crate::job::finetune`.

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
pub use data::TextTokenizer;
pub use model::CausalLm;
pub use weights::FileSource;

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

/// A base model read from its folder's files: the model and its tokenizer.
#[derive(Debug)]
pub struct BaseModel {
    /// The decoder, its weights checked against `config.json`.
    pub model: CausalLm,
    /// `tokenizer.json`, checked against the vocabulary.
    pub tokenizer: TextTokenizer,
}

/// Reads a base model from its folder's files as `get` gives them (`config.json`,
/// `tokenizer.json`, `model.safetensors` or the index and its shards): the config first, then
/// the tokenizer against its `vocab_size` (and `eos_token_id`), then the weights against the
/// config.
///
/// # Errors
/// [`LlmError::Config`] for `config.json` (an architecture ccr does not run) or
/// `tokenizer.json` (missing, unparsable, more tokens than the vocabulary);
/// [`LlmError::Weights`] as [`weights::from_files`].
pub fn load_files(get: FileSource<'_>, device: &Device) -> Result<BaseModel, LlmError> {
    let missing = |f: &str| LlmError::Config {
        field: f.into(),
        reason: "not in the base model's folder".into(),
    };
    let cbytes = get("config.json")?.ok_or_else(|| missing("config.json"))?;
    let config = LlmConfig::from_json(&cbytes)?;
    let eos = serde_json::from_slice::<serde_json::Value>(&cbytes)
        .ok()
        .and_then(|v| {
            let e = v.get("eos_token_id")?;
            // A list (several end tokens): the first closes ccr's examples.
            e.as_u64()
                .or_else(|| e.get(0).and_then(serde_json::Value::as_u64))
        })
        .and_then(|e| u32::try_from(e).ok());
    let tbytes = get("tokenizer.json")?.ok_or_else(|| missing("tokenizer.json"))?;
    let tokenizer = TextTokenizer::from_json(&tbytes, config.vocab(), eos)?;
    let tensors = weights::from_files(get, &config)?;
    Ok(BaseModel {
        model: CausalLm::new(&config, &tensors, device),
        tokenizer,
    })
}

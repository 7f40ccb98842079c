//! A model folder's weights as Hugging Face writes them: `model.safetensors`, or shards named by
//! `model.safetensors.index.json` (`weight_map`: tensor name → shard file), in F32, BF16 or
//! F16, checked name by name and shape by shape against the config before anything is built.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::LlmError;
use super::config::LlmConfig;

/// The model's tensors as f32, by Hugging Face's name: `(shape, values)` row-major.
pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn read(path: &Path) -> Result<Vec<u8>, LlmError> {
    std::fs::read(path).map_err(|e| LlmError::Weights(format!("{}: {e}", path.display())))
}

/// The f32 values of one stored tensor.
fn values(name: &str, v: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>, LlmError> {
    let b = v.data();
    let two = |f: fn([u8; 2]) -> f32| -> Vec<f32> {
        b.chunks_exact(2).map(|c| f([c[0], c[1]])).collect()
    };
    Ok(match v.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => two(|c| half::bf16::from_le_bytes(c).to_f32()),
        Dtype::F16 => two(|c| half::f16::from_le_bytes(c).to_f32()),
        other => {
            return Err(LlmError::Weights(format!(
                "tensor `{name}` is {other:?}; ccr reads F32, BF16 and F16"
            )));
        }
    })
}

/// Reads every tensor of the folder's safetensors file(s) the config names, as f32.
///
/// # Errors
/// As [`from_files`]; [`LlmError::Weights`] for a file that cannot be read.
pub fn load(dir: &Path, config: &LlmConfig) -> Result<Tensors, LlmError> {
    let get = |name: &str| -> Result<Option<Vec<u8>>, LlmError> {
        let p = dir.join(name);
        if p.is_file() {
            read(&p).map(Some)
        } else {
            Ok(None)
        }
    };
    from_files(&get, config)
}

/// A model folder's files by name: `Ok(None)` when the folder has no such file.
pub type FileSource<'a> = &'a dyn Fn(&str) -> Result<Option<Vec<u8>>, LlmError>;

/// Reads every tensor the config names from the folder's files as `get` gives them (from disk,
/// or decrypted in memory): `model.safetensors`, else the shards that
/// `model.safetensors.index.json` names.
///
/// # Errors
/// [`LlmError::Weights`]: no `model.safetensors` nor index, a shard that does not parse, a
/// tensor the config needs that is missing or of another shape (named with both shapes), a
/// dtype other than F32/BF16/F16.
pub fn from_files(get: FileSource<'_>, config: &LlmConfig) -> Result<Tensors, LlmError> {
    let mut first = get("model.safetensors")?;
    let files: Vec<String> = if first.is_some() {
        vec!["model.safetensors".into()]
    } else if let Some(index) = get("model.safetensors.index.json")? {
        let index_name = "model.safetensors.index.json";
        let v: serde_json::Value = serde_json::from_slice(&index)
            .map_err(|e| LlmError::Weights(format!("{index_name}: {e}")))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LlmError::Weights(format!("{index_name}: no `weight_map` object")))?;
        let mut f: Vec<String> = map
            .values()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        f.sort();
        f.dedup();
        if let Some(bad) = f.iter().find(|n| n.contains('/') || n.contains("..")) {
            return Err(LlmError::Weights(format!(
                "{index_name}: shard `{bad}` is not a file name in the folder"
            )));
        }
        f
    } else {
        return Err(LlmError::Weights(
            "the model folder has neither model.safetensors nor model.safetensors.index.json"
                .into(),
        ));
    };
    let want = config.tensors();
    let mut out = Tensors::new();
    for f in &files {
        let bytes = match first.take() {
            Some(b) => b,
            None => get(f)?.ok_or_else(|| {
                LlmError::Weights(format!(
                    "shard `{f}` (named by the index) is not in the folder"
                ))
            })?,
        };
        let st =
            SafeTensors::deserialize(&bytes).map_err(|e| LlmError::Weights(format!("{f}: {e}")))?;
        for (name, v) in st.tensors() {
            // GPT-2's original checkpoints name tensors without `transformer.`.
            let name = if matches!(config, LlmConfig::Gpt2(_)) && !name.starts_with("transformer.")
            {
                format!("transformer.{name}")
            } else {
                name
            };
            if want.iter().any(|(n, _)| *n == name) {
                let vals = values(&name, &v)?;
                out.insert(name, (v.shape().to_vec(), vals));
            }
        }
    }
    for (name, shape) in &want {
        match out.get(name) {
            None => {
                return Err(LlmError::Weights(format!(
                    "tensor `{name}` (shape {shape:?} by config.json) is not in the model's safetensors"
                )));
            }
            Some((got, _)) if got != shape => {
                return Err(LlmError::Weights(format!(
                    "tensor `{name}` has shape {got:?}; config.json makes it {shape:?}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

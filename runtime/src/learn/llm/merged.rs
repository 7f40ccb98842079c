//! The fine-tuned model with its adapters merged into the base weights, as Hugging Face writes
//! a model: `model.safetensors` with the base model's tensor names and layouts (a Llama
//! projection `[out, in]`, a GPT-2 Conv1D `[in, out]`), each targeted projection's weight
//! `W + (α/r)·(A·B)` in Burn's layout transposed back. With the base folder's `config.json` and
//! `tokenizer.json` beside it, `transformers` loads it as a plain model.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Tensor;

use super::LlmError;
use super::config::LlmConfig;
use super::lora::Proj;
use super::model::{Blocks, CausalLm, Norm};

/// Tensors by Hugging Face's name: `(shape, values)` row-major.
pub type Named = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

fn werr(e: &dyn std::fmt::Display) -> LlmError {
    LlmError::Weights(format!("merged model: {e}"))
}

fn values<const D: usize>(t: Tensor<D>) -> Result<(Vec<usize>, Vec<f32>), LlmError> {
    let dims = t.dims().to_vec();
    let v = t
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| werr(&format!("{e:?}")))?;
    Ok((dims, v))
}

/// Every tensor of the merged model by Hugging Face's name.
///
/// # Errors
/// [`LlmError::Weights`] when a tensor cannot be read back.
pub fn merged_tensors(m: &CausalLm) -> Result<Named, LlmError> {
    let mut out = BTreeMap::new();
    let llama = matches!(m.config, LlmConfig::Llama(_));
    let proj = |p: &Proj, out: &mut Named| -> Result<(), LlmError> {
        let mut w = p.base.weight.val();
        if let Some(l) = &p.lora {
            w = w + l.a.val().matmul(l.b.val()) * l.scale;
        }
        // Burn's [in, out]: a Llama projection is stored [out, in], a GPT-2 Conv1D as is.
        let w = if llama { w.transpose() } else { w };
        out.insert(format!("{}.weight", p.name), values(w)?);
        if let Some(b) = &p.base.bias {
            out.insert(format!("{}.bias", p.name), values(b.val())?);
        }
        Ok(())
    };
    let norm = |n: &Norm, name: &str, out: &mut Named| -> Result<(), LlmError> {
        out.insert(format!("{name}.weight"), values(n.weight.val())?);
        if let Some(b) = &n.bias {
            out.insert(format!("{name}.bias"), values(b.val())?);
        }
        Ok(())
    };
    match &m.blocks {
        Blocks::Llama(ls) => {
            out.insert("model.embed_tokens.weight".into(), values(m.embed.val())?);
            for (i, l) in ls.iter().enumerate() {
                let p = format!("model.layers.{i}.");
                norm(&l.input_norm, &format!("{p}input_layernorm"), &mut out)?;
                norm(
                    &l.post_norm,
                    &format!("{p}post_attention_layernorm"),
                    &mut out,
                )?;
                for x in [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down] {
                    proj(x, &mut out)?;
                }
            }
            norm(&m.norm, "model.norm", &mut out)?;
            if let Some(h) = &m.head {
                out.insert("lm_head.weight".into(), values(h.weight.val().transpose())?);
            }
        }
        Blocks::Gpt2(bs) => {
            out.insert("transformer.wte.weight".into(), values(m.embed.val())?);
            if let Some(p) = &m.positions {
                out.insert("transformer.wpe.weight".into(), values(p.val())?);
            }
            for (i, b) in bs.iter().enumerate() {
                let p = format!("transformer.h.{i}.");
                norm(&b.ln1, &format!("{p}ln_1"), &mut out)?;
                norm(&b.ln2, &format!("{p}ln_2"), &mut out)?;
                for x in [&b.qkv, &b.proj, &b.fc, &b.fc_proj] {
                    proj(x, &mut out)?;
                }
            }
            norm(&m.norm, "transformer.ln_f", &mut out)?;
        }
    }
    Ok(out)
}

/// Writes the merged model's `model.safetensors` (F32) into the existing folder `dir`.
///
/// # Errors
/// [`LlmError::Weights`] when it cannot be written.
pub fn save_merged(m: &CausalLm, dir: &Path) -> Result<(), LlmError> {
    std::fs::write(dir.join("model.safetensors"), merged_safetensors(m)?).map_err(|e| werr(&e))
}

/// The merged model's `model.safetensors` (F32), in memory.
///
/// # Errors
/// [`LlmError::Weights`] when a tensor cannot be read back.
pub fn merged_safetensors(m: &CausalLm) -> Result<Vec<u8>, LlmError> {
    let t = merged_tensors(m)?;
    let bytes: BTreeMap<&String, (Vec<usize>, Vec<u8>)> = t
        .iter()
        .map(|(n, (s, v))| {
            (
                n,
                (s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, (s, b))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| ((*n).clone(), v))
                .map_err(|e| werr(&e))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, None).map_err(|e| werr(&e))
}

//! `model.safetensors`: the trained model in PyTorch's layouts.
//!
//! Tensors, all f32, in PyTorch's `nn.Linear` layout so a `torch.nn.Sequential` of Linear
//! layers loads them by renaming:
//! - `layers.{i}.weight`: `[out, in]`;
//! - `layers.{i}.bias`: `[out]`;
//! - `scaler.offset`, `scaler.scale`: `[n_features]`; the model's input is
//!   `(x - offset) / scale`, with `x` in the order of the `feature_columns` metadata.
//!
//! - `CNN` only: `conv.weight` `[out, in, 3, 3]` and `conv.bias` `[out]` (PyTorch's
//!   `nn.Conv2d` layout, stride 1, padding 1).
//!
//! Metadata (`__metadata__`, strings): `format` = `ccr-model/1`, `model`, `activation`,
//! `task`, `feature_columns` (JSON list), `classes` (JSON list of label values), `target`,
//! and for a `CNN` `input_shape` (JSON `[channels, height, width]`).
//! The forward pass: `h = x'`; a `CNN` first reshapes `h` to `[n, channels, height, width]`,
//! applies `relu(conv2d(h, conv.weight, conv.bias, padding 1))`, 2×2 average pooling (stride 2)
//! and flattens (channel, row, column order); then for each layer but the last:
//! `h = act(h @ W.T + b)`; the last layer's output is the logits (classification: argmax is the
//! prediction, softmax the probabilities) or the prediction (regression). The equivalent
//! PyTorch modules: `nn.Sequential(nn.Unflatten(1, input_shape), nn.Conv2d(in, out, 3,
//! padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(...), nn.ReLU(), ...,

use std::collections::HashMap;

use crate::learn::model::backend_err;
use crate::learn::{Prepared, TrainError, Trained};
use crate::pipeline::TrainConfig;

/// Serialises the model to safetensors bytes (layout in the module docs).
///
/// # Errors
/// [`TrainError::Backend`].
pub fn to_safetensors(t: &Trained, p: &Prepared, cfg: &TrainConfig) -> Result<Vec<u8>, TrainError> {
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .net
        .state_dict()
        .into_iter()
        .map(|n| (n.name, n.shape, f32_bytes(&n.values)))
        .collect();
    tensors.push((
        "scaler.offset".into(),
        vec![p.d()],
        f32_bytes(&t.scaler.offset),
    ));
    tensors.push((
        "scaler.scale".into(),
        vec![p.d()],
        f32_bytes(&t.scaler.scale),
    ));
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(backend_err)
        })
        .collect::<Result<_, _>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "ccr-model/1".to_string());
    meta.insert("model".to_string(), cfg.model_config.name.to_string());
    meta.insert(
        "activation".to_string(),
        cfg.model_config.activation.as_str().to_string(),
    );
    meta.insert("task".to_string(), cfg.task_type.to_string());
    if t.net.sample_shape.len() > 1 {
        meta.insert(
            "input_shape".to_string(),
            serde_json::to_string(&t.net.sample_shape).unwrap_or_default(),
        );
    }
    meta.insert(
        "target".to_string(),
        cfg.dataset_config
            .target_variable
            .clone()
            .unwrap_or_else(|| {
                cfg.dataset_config
                    .targets_key
                    .clone()
                    .unwrap_or("targets".into())
            }),
    );
    meta.insert(
        "feature_columns".to_string(),
        serde_json::to_string(&p.features).unwrap_or_default(),
    );
    meta.insert(
        "classes".to_string(),
        serde_json::to_string(&p.classes).unwrap_or_default(),
    );
    safetensors::tensor::serialize(views, Some(meta)).map_err(backend_err)
}

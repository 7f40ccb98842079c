//! Training with Burn on the ndarray backend: data preparation, the model, the loop, the
//! metrics and the safetensors export.
//!
//! # Data
//! Rows with a missing feature or label are dropped. Classification labels are mapped to class
//! indices in ascending order of their value (`classes` in the output). The split is
//! stratified by class when asked (per class: shuffle with the seed, take the test share, then
//! the validation share, the rest trains), and the scaler is fitted on the training split only.
//!
//! # Model
//! `LogisticRegression`: one linear layer with one output per class and softmax cross-entropy
//! (multinomial logistic regression, also for two classes). `LinearRegression`: one linear
//! layer, one output, mean squared error. `MLP`: linear layers with `relu` or `tanh` between.
//! `CNN`: one 3×3 convolution (padding 1) with `relu` and 2×2 average pooling in front of an
//! MLP (for instance the digits scenario's 8×8 images).
//!
//! # `model.safetensors`
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
//! nn.Linear(...))`, applied to the scaled input.

use std::collections::{BTreeMap, HashMap};

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::join::{Cell, Table};
use crate::pipeline::TrainConfig;

/// A training error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A configured column is missing from the joined table.
    #[error("{field}: column `{column}` is not in the joined table (columns: {available})")]
    Column {
        /// The config field.
        field: &'static str,
        /// The column.
        column: String,
        /// Available columns.
        available: String,
    },
    /// A feature column holds text.
    #[error("feature column `{column}` holds non-numeric values (for example row {row})")]
    NotNumeric {
        /// The column.
        column: String,
        /// A row index with text.
        row: usize,
    },
    /// Too few rows or classes.
    #[error("data: {0}")]
    Data(String),
    /// The tensor backend failed.
    #[error("training backend: {0}")]
    Backend(String),
}

/// Prepared data: features, labels and row identifiers.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Feature names, in column order of `x`.
    pub features: Vec<String>,
    /// `[n, d]` row-major features (unscaled).
    pub x: Vec<f32>,
    /// Labels: class index (classification) or value (regression).
    pub y: Vec<f32>,
    /// Class label values (classification), ascending.
    pub classes: Vec<String>,
    /// Row identifiers (the first identifier column, else the row number).
    pub ids: Vec<String>,
}

impl Prepared {
    /// Number of rows.
    pub fn n(&self) -> usize {
        self.y.len()
    }
    /// Number of features.
    pub fn d(&self) -> usize {
        self.features.len()
    }
}

/// Builds features and labels from the joined table.
///
/// # Errors
/// [`TrainError`] naming the column.
pub fn prepare(
    t: &Table,
    cfg: &TrainConfig,
    identifiers: &[String],
) -> Result<Prepared, TrainError> {
    let dc = &cfg.dataset_config;
    let target = t
        .column(&dc.target_variable)
        .ok_or_else(|| TrainError::Column {
            field: "dataset_config.target_variable",
            column: dc.target_variable.clone(),
            available: t.columns.join(", "),
        })?;
    let excluded = |c: &String| {
        c == &dc.target_variable
            || identifiers.contains(c)
            || identifiers.iter().any(|i| c.starts_with(&format!("{i}:")))
    };
    let features: Vec<String> = match &dc.feature_columns {
        Some(f) => f.clone(),
        None => t.columns.iter().filter(|c| !excluded(c)).cloned().collect(),
    };
    let fidx = features
        .iter()
        .map(|c| {
            t.column(c).ok_or_else(|| TrainError::Column {
                field: "dataset_config.feature_columns",
                column: c.clone(),
                available: t.columns.join(", "),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if fidx.is_empty() {
        return Err(TrainError::Data("no feature columns".into()));
    }
    let id_col = identifiers.iter().find_map(|i| t.column(i));
    let classification = cfg.task_type == "classification";
    let mut class_values: Vec<(f64, String)> = Vec::new();
    if classification {
        let mut seen = BTreeMap::new();
        for r in &t.rows {
            if let Some(v) = r[target].as_f64() {
                seen.insert(ordered(v), (v, r[target].to_text()));
            } else if let Cell::Text(s) = &r[target] {
                return Err(TrainError::Data(format!(
                    "target `{}` holds text (`{s}`); labels must be numbers",
                    dc.target_variable
                )));
            }
        }
        class_values = seen.into_values().collect();
        if class_values.len() < 2 {
            return Err(TrainError::Data("fewer than two classes".into()));
        }
    }
    let mut p = Prepared {
        features,
        x: Vec::new(),
        y: Vec::new(),
        classes: class_values.iter().map(|c| c.1.clone()).collect(),
        ids: Vec::new(),
    };
    'rows: for (ri, r) in t.rows.iter().enumerate() {
        let Some(yv) = r[target].as_f64() else {
            continue;
        };
        let mut xs = Vec::with_capacity(fidx.len());
        for (k, &i) in fidx.iter().enumerate() {
            match &r[i] {
                Cell::Num(v) => xs.push(*v as f32),
                Cell::Null => continue 'rows,
                Cell::Text(_) => {
                    return Err(TrainError::NotNumeric {
                        column: p.features[k].clone(),
                        row: ri,
                    });
                }
            }
        }
        p.x.extend(xs);
        p.y.push(if classification {
            class_values.iter().position(|c| c.0 == yv).unwrap_or(0) as f32
        } else {
            yv as f32
        });
        p.ids
            .push(id_col.map_or_else(|| ri.to_string(), |c| r[c].to_text()));
    }
    if p.n() < 10 {
        return Err(TrainError::Data(format!("only {} complete rows", p.n())));
    }
    Ok(p)
}

fn ordered(v: f64) -> u64 {
    // Labels are small integers in practice; order by value through a monotone key.
    let b = v.to_bits();
    if v.is_sign_negative() {
        !b
    } else {
        b | (1 << 63)
    }
}

/// Row indices of the train, validation and test splits.
#[derive(Debug, Clone)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
    /// Held-out test rows.
    pub test: Vec<usize>,
}

/// Splits rows, stratified by class when `stratify` (classification), with `seed`.
pub fn split(p: &Prepared, train_cfg: &TrainConfig) -> Split {
    let s = &train_cfg.dataset_config.splits;
    let mut rng = ChaCha8Rng::seed_from_u64(s.random_state);
    let groups: Vec<Vec<usize>> = if s.stratify && train_cfg.task_type == "classification" {
        let mut g: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, y) in p.y.iter().enumerate() {
            g.entry(*y as u32).or_default().push(i);
        }
        g.into_values().collect()
    } else {
        vec![(0..p.n()).collect()]
    };
    let mut out = Split {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
    };
    for mut g in groups {
        g.shuffle(&mut rng);
        let n = g.len();
        let nt = ((n as f64) * s.test).round() as usize;
        let nv = ((n as f64) * s.val).round() as usize;
        out.test.extend_from_slice(&g[..nt.min(n)]);
        out.val.extend_from_slice(&g[nt.min(n)..(nt + nv).min(n)]);
        out.train.extend_from_slice(&g[(nt + nv).min(n)..]);
    }
    out.train.sort_unstable();
    out.val.sort_unstable();
    out.test.sort_unstable();
    out
}

/// A fitted scaler: `x' = (x - offset) / scale`.
#[derive(Debug, Clone)]
pub struct Scaler {
    /// Per-feature offset.
    pub offset: Vec<f32>,
    /// Per-feature scale (never 0).
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Fits `kind` on the rows `idx` of `p`.
    pub fn fit(kind: &str, p: &Prepared, idx: &[usize]) -> Self {
        let d = p.d();
        let col = |j: usize| idx.iter().map(move |&i| p.x[i * d + j] as f64);
        let mut offset = vec![0f32; d];
        let mut scale = vec![1f32; d];
        for j in 0..d {
            let n = idx.len().max(1) as f64;
            let (o, s) = match kind {
                "standard" => {
                    let mean = col(j).sum::<f64>() / n;
                    let var = col(j).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
                "minmax" => {
                    let lo = col(j).fold(f64::INFINITY, f64::min);
                    let hi = col(j).fold(f64::NEG_INFINITY, f64::max);
                    (lo, hi - lo)
                }
                "maxabs" => (0.0, col(j).fold(0.0, |m, v| f64::max(m, v.abs()))),
                _ => (0.0, 1.0),
            };
            offset[j] = o as f32;
            scale[j] = if s.is_finite() && s > 1e-12 {
                s as f32
            } else {
                1.0
            };
        }
        Self { offset, scale }
    }

    /// Scaled rows `idx` of `p`, row-major.
    pub fn transform(&self, p: &Prepared, idx: &[usize]) -> Vec<f32> {
        let d = p.d();
        let mut out = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            for j in 0..d {
                out.push((p.x[i * d + j] - self.offset[j]) / self.scale[j]);
            }
        }
        out
    }
}

/// The network: an optional convolution front (3×3, padding 1, `relu`, 2×2 average pooling)
/// and linear layers with an activation between them.
#[derive(Module, Debug)]
pub struct Net {
    conv: Option<Conv2d>,
    layers: Vec<Linear>,
    #[module(skip)]
    tanh: bool,
    /// `[channels, height, width]` of the CNN input.
    #[module(skip)]
    image: Option<[usize; 3]>,
}

/// The convolution options of the CNN front: stride 1, padding 1, dilation 1.
pub fn conv_options() -> burn::tensor::ops::ConvOptions<2> {
    burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
}

/// The pooling of the CNN front: 2×2 average, stride 2.
pub fn pool_options() -> burn::tensor::ops::AvgPoolOptions<2> {
    burn::tensor::ops::AvgPoolOptions::new([2, 2])
}

/// The CNN front's kernel size.
pub const KERNEL: usize = 3;

impl Net {
    fn new(device: &Device, dims: &[usize], tanh: bool) -> Self {
        let layers = dims
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self {
            conv: None,
            layers,
            tanh,
            image: None,
        }
    }

    /// A CNN: the convolution `image[0] → channels` in front of linear layers `dims` (whose
    /// first width is `channels × height/2 × width/2`).
    fn cnn(
        device: &Device,
        image: [usize; 3],
        channels: usize,
        dims: &[usize],
        tanh: bool,
    ) -> Self {
        let conv = Conv2dConfig::new([image[0], channels], [KERNEL, KERNEL])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        let mut n = Self::new(device, dims, tanh);
        n.conv = Some(conv);
        n.image = Some(image);
        n
    }

    /// The same network with its parameters read from a `model.safetensors` in ccr's layout
    /// (module docs): `conv.weight`/`conv.bias` for a CNN and `layers.{i}.weight` `[out, in]`
    /// and `layers.{i}.bias` for each layer, f32, with this network's shapes. The scaler in
    /// the file is not used (it is fitted on this run's training split).
    ///
    /// # Errors
    /// [`TrainError::Data`] naming the tensor that is missing, not f32, or of another shape.
    pub fn with_weights_from(mut self, bytes: &[u8], device: &Device) -> Result<Self, TrainError> {
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| TrainError::Data(format!("base model: not safetensors: {e}")))?;
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, TrainError> {
            let t = st
                .tensor(name)
                .map_err(|_| TrainError::Data(format!("base model: no tensor `{name}`")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(TrainError::Data(format!(
                    "base model: `{name}` is {:?} {:?}, this pipeline's model needs F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        if let Some(c) = &mut self.conv {
            let dims = c.weight.dims();
            let w = get("conv.weight", &dims)?;
            c.weight = burn::module::Param::from_tensor(Tensor::<4>::from_data(
                TensorData::new(w, dims),
                device,
            ));
            let b = get("conv.bias", &[dims[0]])?;
            c.bias = Some(burn::module::Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(b, [dims[0]]),
                device,
            )));
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            let [din, dout] = l.weight.dims();
            let w = get(&format!("layers.{i}.weight"), &[dout, din])?;
            let wt = Tensor::<2>::from_data(TensorData::new(w, [dout, din]), device).transpose();
            l.weight = burn::module::Param::from_tensor(wt);
            let b = get(&format!("layers.{i}.bias"), &[dout])?;
            l.bias = Some(burn::module::Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(b, [dout]),
                device,
            )));
        }
        let n = self.layers.len();
        if st.tensor(&format!("layers.{n}.weight")).is_ok() {
            return Err(TrainError::Data(format!(
                "base model: it has more than the {n} layers this pipeline's model has"
            )));
        }
        Ok(self)
    }

    /// The convolution's parameters without autodiff: weight `[out, in, 3, 3]`, bias `[out]`,
    /// and the image shape.
    pub fn dp_conv(&self) -> Option<crate::dpsgd::ConvLayer> {
        match (&self.conv, self.image) {
            (Some(c), Some(image)) => Some(crate::dpsgd::ConvLayer {
                weight: c.weight.val().inner(),
                bias: c.bias.as_ref().map(|b| b.val().inner()),
                image,
            }),
            _ => None,
        }
    }

    /// The layers' parameters without autodiff, for DP-SGD's own backward pass.
    pub fn dp_layers(&self) -> Vec<crate::dpsgd::Layer> {
        self.layers
            .iter()
            .map(|l| crate::dpsgd::Layer {
                weight: l.weight.val().inner(),
                bias: l.bias.as_ref().map(|b| b.val().inner()),
            })
            .collect()
    }

    /// `[batch, in]` → `[batch, out]` (a CNN reads each row as an image).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let n = self.layers.len();
        let mut h = x;
        if let (Some(conv), Some([c, hh, ww])) = (&self.conv, self.image) {
            let b = h.dims()[0];
            let z = conv.forward(h.reshape([b, c, hh, ww]));
            let pooled =
                burn::tensor::module::avg_pool2d(burn::tensor::activation::relu(z), pool_options());
            let [_, co, ph, pw] = pooled.dims();
            h = pooled.reshape([b, co * ph * pw]);
        }
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(h);
            if i + 1 < n {
                h = if self.tanh {
                    burn::tensor::activation::tanh(h)
                } else {
                    burn::tensor::activation::relu(h)
                };
            }
        }
        h
    }
}

/// The DP-SGD parameters of a run (from the pipeline's `privacy_params`, the contract and the
/// accountant; see [`plan_dp`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpPlan {
    /// Clipping norm `C` of each per-sample gradient.
    pub max_grad_norm: f64,
    /// Noise multiplier `σ`: the noise's standard deviation is `σ C`.
    pub noise_multiplier: f64,
    /// Poisson sampling rate `q = batch_size / training rows`.
    pub sampling_rate: f64,
    /// Steps per epoch (`round(1 / q)`).
    pub steps_per_epoch: u64,
    /// The most steps the budget allows (≤ epochs × steps per epoch).
    pub max_steps: u64,
    /// The run's epsilon budget (the pipeline's target epsilon).
    pub target_epsilon: f64,
    /// Delta.
    pub delta: f64,
}

/// What a DP run spent.
#[derive(Debug, Clone, Serialize)]
pub struct DpSpent {
    /// Epsilon spent (RDP accountant).
    pub epsilon: f64,
    /// The delta it is spent at.
    pub delta: f64,
    /// The RDP order that gives it.
    pub order: f64,
    /// Steps taken.
    pub steps: u64,
    /// The plan.
    pub plan: DpPlan,
}

/// The DP-SGD plan for `n_train` training rows: the sampling rate is `batch_size / n_train`,
/// `round(1/q)` steps per epoch; the noise multiplier is the given one (`privacy_params
/// .noise_multiplier` or the contract's, the larger when both are given), or else the smallest
/// that keeps every planned step within the target epsilon ([`crate::dp::noise_multiplier`]);
/// `max_steps` is where the target epsilon is reached.
///
/// # Errors
/// [`TrainError::Data`] naming the parameter when the accountant refuses it (for instance a
/// target epsilon no noise multiplier reaches).
pub fn plan_dp(
    cfg: &TrainConfig,
    n_train: usize,
    contract_noise: Option<f64>,
) -> Result<DpPlan, TrainError> {
    let p = cfg.privacy_params.as_ref();
    let num = |k: &str| {
        p.and_then(|p| p.get(k)).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let bad = |e: crate::dp::DpError| TrainError::Data(format!("privacy_params: {e}"));
    let target = num("epsilon").unwrap_or(f64::NAN);
    let delta = num("delta").unwrap_or(f64::NAN);
    let max_grad_norm = num("max_grad_norm").unwrap_or(f64::NAN);
    let q = (cfg.batch_size as f64 / n_train.max(1) as f64).min(1.0);
    let steps_per_epoch = ((1.0 / q).round() as u64).max(1);
    let planned = steps_per_epoch * cfg.total_epochs as u64;
    let given = match (num("noise_multiplier"), contract_noise) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let sigma = match given {
        Some(s) => s,
        None => {
            crate::dp::noise_multiplier(target, q, planned, delta)
                .map_err(bad)?
                .0
        }
    };
    let acc = crate::dp::Accountant::new(q, sigma).map_err(bad)?;
    let max_steps = acc.max_steps(target, delta, planned).map_err(bad)?;
    if max_steps == 0 {
        return Err(TrainError::Data(format!(
            "privacy_params: one step at noise multiplier {sigma} already spends more than epsilon {target}"
        )));
    }
    Ok(DpPlan {
        max_grad_norm,
        noise_multiplier: sigma,
        sampling_rate: q,
        steps_per_epoch,
        max_steps,
        target_epsilon: target,
        delta,
    })
}

/// Per-epoch record.
#[derive(Debug, Clone, Serialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss; `None` for DP runs (a loss over private batches, without noise, is
    /// not covered by the DP guarantee, so it is not reported, logged or drawn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    /// DP runs: epsilon spent so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Validation accuracy (classification) or MSE (regression), when there is a validation
    /// split and the run is not DP (for the same reason as the loss).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<f64>,
}

/// The trained model and what to report.
pub struct Trained {
    /// The network.
    pub net: Net,
    /// Layer widths, input first.
    pub dims: Vec<usize>,
    /// The scaler.
    pub scaler: Scaler,
    /// Per-epoch log.
    pub epochs: Vec<EpochLog>,
    /// DP runs: what was spent.
    pub dp: Option<DpSpent>,
}

fn backend_err(e: impl std::fmt::Debug) -> TrainError {
    TrainError::Backend(format!("{e:?}"))
}

/// The training device with autodiff: the ndarray backend on the CPU, or with the `gpu` cargo
/// feature and `CCR_DEVICE=cuda` (or `cuda:N`), Burn's CUDA backend on GPU N.
#[allow(deprecated)]
pub fn device() -> Device {
    #[cfg(feature = "gpu")]
    if let Ok(d) = std::env::var("CCR_DEVICE")
        && let Some(rest) = d.strip_prefix("cuda")
    {
        let index: usize = rest.trim_start_matches(':').parse().unwrap_or(0);
        return Device::cuda(index).autodiff();
    }
    Device::ndarray().autodiff()
}

/// Forward pass on rows (already scaled), returning `[n, out]` row-major outputs.
///
/// # Errors
/// [`TrainError::Backend`].
pub fn predict(
    net: &Net,
    device: &Device,
    x: &[f32],
    n: usize,
    d: usize,
) -> Result<Vec<f32>, TrainError> {
    let mut out = Vec::new();
    for start in (0..n).step_by(1024) {
        let end = (start + 1024).min(n);
        let xb = Tensor::<2>::from_data(
            TensorData::new(x[start * d..end * d].to_vec(), [end - start, d]),
            device,
        );
        let o = net
            .forward(xb)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(backend_err)?;
        out.extend(o);
    }
    Ok(out)
}

/// Trains on the split's training rows.
///
/// `on_epoch` is called after each epoch (for progress logs); when it returns `false`
/// training stops and `Ok(None)` is returned.
///
/// # Errors
/// [`TrainError`].
pub fn train(
    p: &Prepared,
    sp: &Split,
    cfg: &TrainConfig,
    dp: Option<&DpPlan>,
    base_model: Option<&[u8]>,
    mut on_epoch: impl FnMut(&EpochLog) -> bool,
) -> Result<Option<Trained>, TrainError> {
    let seed = cfg.dataset_config.splits.random_state;
    let classification = cfg.task_type == "classification";
    let device = device();
    device.seed(seed);
    let d = p.d();
    let out_dim = if classification { p.classes.len() } else { 1 };
    let mc = &cfg.model_config;
    let cnn = match (mc.name.as_str(), mc.input_shape, mc.conv_channels) {
        ("CNN", Some(image), Some(channels)) => {
            if image.iter().product::<usize>() != d {
                return Err(TrainError::Data(format!(
                    "model_config.input_shape {image:?} has {} pixels, the data {d} features",
                    image.iter().product::<usize>()
                )));
            }
            Some((image, channels))
        }
        _ => None,
    };
    let mut dims = vec![match cnn {
        Some((image, channels)) => channels * (image[1] / 2) * (image[2] / 2),
        None => d,
    }];
    if mc.name == "MLP" || mc.name == "CNN" {
        dims.extend(&mc.hidden_layers);
    }
    dims.push(out_dim);
    let scaler = Scaler::fit(&cfg.dataset_config.preprocessing.scaler, p, &sp.train);
    let xtr = scaler.transform(p, &sp.train);
    let xval = scaler.transform(p, &sp.val);
    let tanh = mc.activation == "tanh";
    let mut net = match cnn {
        Some((image, channels)) => Net::cnn(&device, image, channels, &dims, tanh),
        None => Net::new(&device, &dims, tanh),
    };
    if let Some(bytes) = base_model {
        net = net.with_weights_from(bytes, &device)?;
    }
    let prm = &cfg.optimizer.params;
    let wd = (prm.weight_decay > 0.0).then(|| WeightDecayConfig::new(prm.weight_decay as f32));
    let mut optim = match cfg.optimizer.name.as_str() {
        "SGD" => SgdConfig::new()
            .with_weight_decay(wd)
            .with_momentum(
                (prm.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(prm.momentum)),
            )
            .init(),
        "AdamW" => AdamWConfig::new()
            .with_weight_decay(prm.weight_decay as f32)
            .init(),
        _ => AdamConfig::new().with_weight_decay(wd).init(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05ee_d0fb_a7c4);
    let mut order: Vec<usize> = (0..sp.train.len()).collect();
    let mut epochs = Vec::new();
    let mut dp_state = match dp {
        Some(plan) => Some((
            plan,
            crate::dpsgd::DpRng::from_os(),
            crate::dp::Accountant::new(plan.sampling_rate, plan.noise_multiplier)
                .map_err(|e| TrainError::Data(format!("privacy_params: {e}")))?,
        )),
        None => None,
    };
    let mut steps = 0u64;
    let target = |rows: &[usize]| {
        if classification {
            crate::dpsgd::Target::Classes {
                labels: rows.iter().map(|&k| p.y[sp.train[k]] as usize).collect(),
                classes: out_dim,
            }
        } else {
            crate::dpsgd::Target::Values(rows.iter().map(|&k| p.y[sp.train[k]]).collect())
        }
    };
    let batch_x = |rows: &[usize], device: &Device| {
        let mut xb = Vec::with_capacity(rows.len() * d);
        for &k in rows {
            xb.extend_from_slice(&xtr[k * d..(k + 1) * d]);
        }
        Tensor::<2>::from_data(TensorData::new(xb, [rows.len(), d]), device)
    };
    for epoch in 1..=cfg.total_epochs {
        let mut loss_sum = 0.0;
        let mut batches = 0usize;
        if let Some((plan, dprng, _)) = &mut dp_state {
            // DP-SGD: Poisson-sampled batches, clipped per-sample gradients, Gaussian noise.
            let inner = device.clone().inner();
            let expected = plan.sampling_rate * order.len() as f64;
            for _ in 0..plan.steps_per_epoch {
                if steps >= plan.max_steps {
                    break;
                }
                let rows = dprng.poisson(&order, plan.sampling_rate);
                let sums = if rows.is_empty() {
                    crate::dpsgd::zero_sums(&net.dp_layers(), net.dp_conv().as_ref())
                } else {
                    let (sums, loss) = batch_sums(
                        &net,
                        batch_x(&rows, &inner),
                        &target(&rows),
                        Some(plan.max_grad_norm),
                    );
                    loss_sum += loss / rows.len() as f64;
                    batches += 1;
                    sums
                };
                let noisy = crate::dpsgd::noisy_step(
                    sums,
                    plan.noise_multiplier,
                    plan.max_grad_norm,
                    expected,
                    dprng,
                );
                let grads = gradients_of(&net, noisy);
                net = optim.step(prm.lr, net, grads);
                steps += 1;
            }
        } else {
            // Plain mini-batch SGD through the same backward pass (no clipping, no noise): the
            // mean loss's gradient is the summed gradient over the batch size.
            order.shuffle(&mut rng);
            let inner = device.clone().inner();
            for chunk in order.chunks(cfg.batch_size) {
                let (sums, loss) = batch_sums(&net, batch_x(chunk, &inner), &target(chunk), None);
                loss_sum += loss / chunk.len() as f64;
                batches += 1;
                let mean = crate::dpsgd::scale_sums(sums, 1.0 / chunk.len() as f64);
                let grads = gradients_of(&net, mean);
                net = optim.step(prm.lr, net, grads);
            }
        }
        let epsilon = match &dp_state {
            Some((plan, _, acc)) => Some(
                acc.epsilon(steps, plan.delta)
                    .map_err(|e| TrainError::Data(e.to_string()))?
                    .0,
            ),
            None => None,
        };
        let val_metric = if sp.val.is_empty() || dp_state.is_some() {
            None
        } else {
            let out = predict(&net, &device, &xval, sp.val.len(), d)?;
            let labels: Vec<f32> = sp.val.iter().map(|&i| p.y[i]).collect();
            Some(if classification {
                accuracy(&argmax_rows(&out, out_dim), &labels)
            } else {
                mse(&out, &labels)
            })
        };
        let log = EpochLog {
            epoch,
            train_loss: dp_state.is_none().then(|| loss_sum / batches.max(1) as f64),
            epsilon,
            val_metric,
        };
        let go_on = on_epoch(&log);
        epochs.push(log);
        if !go_on {
            return Ok(None);
        }
        if let Some((plan, _, _)) = &dp_state
            && steps >= plan.max_steps
        {
            break; // the budget is spent
        }
    }
    let dp = match dp_state {
        Some((plan, _, acc)) => {
            let (epsilon, order) = acc
                .epsilon(steps, plan.delta)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            Some(DpSpent {
                epsilon,
                delta: plan.delta,
                order,
                steps,
                plan: plan.clone(),
            })
        }
        None => None,
    };
    Ok(Some(Trained {
        net,
        dims,
        scaler,
        epochs,
        dp,
    }))
}

/// The summed (clipped to `clip` per sample, when given) gradients of a batch, and its summed
/// loss.
fn batch_sums(
    net: &Net,
    x: Tensor<2>,
    target: &crate::dpsgd::Target,
    clip: Option<f64>,
) -> (crate::dpsgd::Sums, f64) {
    let bp = crate::dpsgd::backprop_net(
        net.dp_conv().as_ref(),
        &net.dp_layers(),
        net.tanh,
        x,
        target,
    );
    let norms = crate::dpsgd::per_sample_norms(&bp, true);
    let factors = match clip {
        Some(c) => crate::dpsgd::clip_factors(norms, c),
        None => norms.zeros_like().add_scalar(1.0),
    };
    (crate::dpsgd::clipped_sums(&bp, &factors), bp.loss_sum)
}

/// Gradients of the network's parameters for the optimizer.
fn gradients_of(net: &Net, g: crate::dpsgd::Sums) -> GradientsParams {
    let mut grads = GradientsParams::new();
    for (l, (gw, gb)) in net.layers.iter().zip(g.dense) {
        grads.register(l.weight.id, gw);
        if let Some(b) = &l.bias {
            grads.register(b.id, gb);
        }
    }
    if let (Some(c), Some((gw, gb))) = (&net.conv, g.conv) {
        grads.register(c.weight.id, gw);
        if let Some(b) = &c.bias {
            grads.register(b.id, gb);
        }
    }
    grads
}

/// Row-wise argmax of `[n, k]` outputs.
pub fn argmax_rows(out: &[f32], k: usize) -> Vec<f32> {
    out.chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                    if v > b.1 { (i, v) } else { b }
                })
                .0 as f32
        })
        .collect()
}

/// Softmax probability of class 1 for `[n, 2]` logits.
pub fn positive_scores(out: &[f32]) -> Vec<f64> {
    out.chunks(2)
        .map(|r| {
            let (a, b) = (f64::from(r[0]), f64::from(r[1]));
            1.0 / (1.0 + (a - b).exp())
        })
        .collect()
}

/// F1 score of class indices: for two classes, of class 1; for more, the mean over classes
/// (macro F1). A class never predicted nor present adds nothing to the mean.
pub fn f1(pred: &[f32], labels: &[f32], classes: usize) -> f64 {
    let f1_of = |c: f32| {
        let tp = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == c && **l == c)
            .count() as f64;
        let fp = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == c && **l != c)
            .count() as f64;
        let fn_ = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p != c && **l == c)
            .count() as f64;
        (tp + fp + fn_ > 0.0).then(|| 2.0 * tp / (2.0 * tp + fp + fn_))
    };
    if classes == 2 {
        return f1_of(1.0).unwrap_or(0.0);
    }
    let per: Vec<f64> = (0..classes).filter_map(|c| f1_of(c as f32)).collect();
    per.iter().sum::<f64>() / per.len().max(1) as f64
}

/// Fraction of equal entries.
pub fn accuracy(pred: &[f32], labels: &[f32]) -> f64 {
    let ok = pred.iter().zip(labels).filter(|(a, b)| a == b).count();
    ok as f64 / labels.len().max(1) as f64
}

/// Mean squared error.
pub fn mse(pred: &[f32], labels: &[f32]) -> f64 {
    pred.iter()
        .zip(labels)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / labels.len().max(1) as f64
}

/// ROC AUC for binary labels (0/1) and scores, with ties counted half (Mann–Whitney U).
pub fn roc_auc(scores: &[f64], labels: &[f32]) -> Option<f64> {
    let mut v: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(s, l)| (*s, *l == 1.0))
        .collect();
    let pos = v.iter().filter(|x| x.1).count();
    let neg = v.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0; // ranks are 1-based
        rank_sum += avg_rank * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

/// The training loss per epoch as an SVG line chart (`loss_curve.svg` in the output; 640×360,
/// epochs on x, loss on y from 0 to the largest loss; DP runs also draw epsilon spent, dashed,
/// on its own scale from 0 to its last value).
pub fn loss_curve_svg(epochs: &[EpochLog]) -> String {
    let (w, h, m) = (640.0, 360.0, 48.0);
    let n = epochs.len().max(2) as f64 - 1.0;
    let x = |i: usize| m + (w - 2.0 * m) * i as f64 / n;
    let line = |vals: Vec<f64>, color: &str, dash: &str| {
        let top = vals.iter().copied().fold(0.0, f64::max).max(1e-12);
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), h - m - (h - 2.0 * m) * v / top))
            .collect();
        (
            format!(
                r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
                pts.join(" ")
            ),
            top,
        )
    };
    let losses: Vec<f64> = epochs.iter().filter_map(|e| e.train_loss).collect();
    let (loss, top) = if losses.is_empty() {
        (String::new(), 0.0)
    } else {
        line(losses, "#1f77b4", "")
    };
    let eps: Vec<f64> = epochs.iter().filter_map(|e| e.epsilon).collect();
    let (eps_line, eps_top) = if eps.len() == epochs.len() && !eps.is_empty() {
        let (l, t) = line(eps, "#d62728", r#" stroke-dasharray="6 4""#);
        (l, Some(t))
    } else {
        (String::new(), None)
    };
    let eps_label = eps_top
        .map(|t| {
            format!(
                r##"<text x="{}" y="{}" font-size="12" fill="#d62728" text-anchor="end">epsilon (dashed), 0 to {t:.3}</text>"##,
                w - m,
                m - 8.0
            )
        })
        .unwrap_or_default();
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
<rect width="100%" height="100%" fill="white"/>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/>
<line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="black"/>
<text x="{cx}" y="{tb}" font-size="12" text-anchor="middle">epoch (1 to {ne})</text>
<text x="{m}" y="{ty}" font-size="12">{loss_label}</text>
{eps_label}
{loss}
{eps_line}
</svg>
"#,
        b = h - m,
        r = w - m,
        cx = w / 2.0,
        tb = h - 12.0,
        ne = epochs.len(),
        ty = m - 8.0,
        loss_label = if loss.is_empty() {
            "training loss not shown: DP run".to_string()
        } else {
            format!("training loss, 0 to {top:.4}")
        },
    )
}

/// The model's parameters for [`crate::onnx::export`] (PyTorch layouts, scaler included).
///
/// # Errors
/// [`TrainError::Backend`].
pub fn onnx_weights(
    t: &Trained,
    cfg: &TrainConfig,
    metadata: Vec<(String, String)>,
) -> Result<crate::onnx::Weights, TrainError> {
    let vec1 = |x: Tensor<1>| x.into_data().try_to_vec::<f32>().map_err(backend_err);
    let conv = match (&t.net.conv, t.net.image) {
        (Some(c), Some(image)) => {
            let w = c.weight.val();
            let out = w.dims()[0];
            let wv = w.into_data().try_to_vec::<f32>().map_err(backend_err)?;
            let bv = match &c.bias {
                Some(b) => vec1(b.val())?,
                None => vec![0.0; out],
            };
            Some(crate::onnx::ConvWeights {
                weight: wv,
                bias: bv,
                out,
                image,
            })
        }
        _ => None,
    };
    let mut layers = Vec::new();
    for l in &t.net.layers {
        let w = l.weight.val();
        let [din, dout] = w.dims();
        let wt = w
            .transpose()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(backend_err)?;
        let b = match &l.bias {
            Some(b) => vec1(b.val())?,
            None => vec![0.0; dout],
        };
        layers.push(crate::onnx::DenseWeights {
            weight: wt,
            bias: b,
            out: dout,
            inp: din,
        });
    }
    Ok(crate::onnx::Weights {
        offset: t.scaler.offset.clone(),
        scale: t.scaler.scale.clone(),
        conv,
        layers,
        tanh: t.net.tanh,
        classification: cfg.task_type == "classification",
        metadata,
    })
}

/// Serialises the model to safetensors bytes (layout in the module docs).
///
/// # Errors
/// [`TrainError::Backend`].
pub fn to_safetensors(t: &Trained, p: &Prepared, cfg: &TrainConfig) -> Result<Vec<u8>, TrainError> {
    // The same PyTorch-layout parameters the ONNX export writes.
    let w = onnx_weights(t, cfg, Vec::new())?;
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    if let Some(c) = &w.conv {
        let [cin, _, _] = c.image;
        let k = KERNEL;
        tensors.push((
            "conv.weight".into(),
            vec![c.out, cin, k, k],
            f32_bytes(&c.weight),
        ));
        tensors.push(("conv.bias".into(), vec![c.out], f32_bytes(&c.bias)));
    }
    for (i, l) in w.layers.iter().enumerate() {
        tensors.push((
            format!("layers.{i}.weight"),
            vec![l.out, l.inp],
            f32_bytes(&l.weight),
        ));
        tensors.push((format!("layers.{i}.bias"), vec![l.out], f32_bytes(&l.bias)));
    }
    tensors.push(("scaler.offset".into(), vec![p.d()], f32_bytes(&w.offset)));
    tensors.push(("scaler.scale".into(), vec![p.d()], f32_bytes(&w.scale)));
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
    meta.insert("model".to_string(), cfg.model_config.name.clone());
    meta.insert(
        "activation".to_string(),
        cfg.model_config.activation.clone(),
    );
    meta.insert("task".to_string(), cfg.task_type.clone());
    if let Some(image) = t.net.image {
        meta.insert(
            "input_shape".to_string(),
            serde_json::to_string(&image).unwrap_or_default(),
        );
    }
    meta.insert(
        "target".to_string(),
        cfg.dataset_config.target_variable.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
    use burn::tensor::Int;

    fn vecf<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs())),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// A network and a batch: 7 samples, 5 features, hidden 6 and 4, `out` outputs.
    fn net_and_batch(tanh: bool, out: usize) -> (Net, Device, Vec<f32>) {
        let device = device();
        device.seed(3);
        let net = Net::new(&device, &[5, 6, 4, out], tanh);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..7 * 5)
            .map(|_| rand::Rng::gen_range(&mut rng, -2.0..2.0))
            .collect();
        (net, device, x)
    }

    #[test]
    fn per_sample_gradients_equal_one_sample_at_a_time_autodiff() {
        for (tanh, classification) in [(false, true), (true, true), (false, false)] {
            let out = if classification { 3 } else { 1 };
            let (net, device, x) = net_and_batch(tanh, out);
            let labels = [0usize, 2, 1, 1, 0, 2, 2];
            let values = [0.5f32, -1.0, 2.0, 0.0, 1.5, -0.5, 3.0];
            let target = if classification {
                crate::dpsgd::Target::Classes {
                    labels: labels.to_vec(),
                    classes: 3,
                }
            } else {
                crate::dpsgd::Target::Values(values.to_vec())
            };
            let inner = device.clone().inner();
            let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [7, 5]), &inner);
            let bp = crate::dpsgd::backprop(&net.dp_layers(), tanh, xb, &target);
            let psg = crate::dpsgd::per_sample_gradients(&bp);
            let norms = vecf(crate::dpsgd::per_sample_norms(&bp, true));
            for i in 0..7 {
                // Burn's autodiff on a batch of one: the mean loss is the sample's loss.
                let xi = Tensor::<2>::from_data(
                    TensorData::new(x[i * 5..(i + 1) * 5].to_vec(), [1, 5]),
                    &device,
                );
                let o = net.forward(xi);
                let loss = if classification {
                    let y = Tensor::<1, Int>::from_data(
                        TensorData::new(vec![labels[i] as i64], [1]),
                        &device,
                    );
                    CrossEntropyLossConfig::new().init(&device).forward(o, y)
                } else {
                    let y =
                        Tensor::<2>::from_data(TensorData::new(vec![values[i]], [1, 1]), &device);
                    MseLoss::new().forward(o, y, Reduction::Mean)
                };
                let mut grads = loss.backward();
                let mut sq = 0f32;
                for (l, layer) in net.layers.iter().enumerate() {
                    let gw = vecf(layer.weight.grad_remove(&mut grads).unwrap());
                    let gb = vecf(
                        layer
                            .bias
                            .as_ref()
                            .unwrap()
                            .grad_remove(&mut grads)
                            .unwrap(),
                    );
                    let [_, din, dout] = psg[l].0.dims();
                    let ours_w = vecf(psg[l].0.clone().slice([i..i + 1, 0..din, 0..dout]));
                    let ours_b = vecf(psg[l].1.clone().slice([i..i + 1, 0..dout]));
                    close(
                        &ours_w,
                        &gw,
                        &format!("tanh={tanh} sample {i} layer {l} weight"),
                    );
                    close(
                        &ours_b,
                        &gb,
                        &format!("tanh={tanh} sample {i} layer {l} bias"),
                    );
                    sq += gw.iter().chain(&gb).map(|g| g * g).sum::<f32>();
                }
                close(
                    &[norms[i]],
                    &[sq.sqrt()],
                    &format!("tanh={tanh} sample {i} norm"),
                );
            }
        }
    }

    #[test]
    fn cnn_per_sample_gradients_and_norms_equal_one_sample_at_a_time_autodiff() {
        let device = device();
        device.seed(5);
        // 2 channels of 4×6 images, 3 filters, dense 3·2·3 → 5 → 4 classes.
        let net = Net::cnn(&device, [2, 4, 6], 3, &[18, 5, 4], false);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let b = 5;
        let x: Vec<f32> = (0..b * 48)
            .map(|_| rand::Rng::gen_range(&mut rng, -1.0..1.0))
            .collect();
        let labels = [3usize, 0, 2, 1, 3];
        let inner = device.clone().inner();
        let bp = crate::dpsgd::backprop_net(
            net.dp_conv().as_ref(),
            &net.dp_layers(),
            false,
            Tensor::<2>::from_data(TensorData::new(x.clone(), [b, 48]), &inner),
            &crate::dpsgd::Target::Classes {
                labels: labels.to_vec(),
                classes: 4,
            },
        );
        let norms = vecf(crate::dpsgd::per_sample_norms(&bp, true));
        let conv = bp.conv.as_ref().unwrap();
        let f = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, 1.0, 0.25, 0.0, 2.0], [b, 1]),
            &inner,
        );
        let sums = crate::dpsgd::clipped_sums(&bp, &f);
        let mut want_conv_sum = vec![0f32; 3 * 18];
        for i in 0..b {
            let xi = Tensor::<2>::from_data(
                TensorData::new(x[i * 48..(i + 1) * 48].to_vec(), [1, 48]),
                &device,
            );
            let y =
                Tensor::<1, Int>::from_data(TensorData::new(vec![labels[i] as i64], [1]), &device);
            let loss = CrossEntropyLossConfig::new()
                .init(&device)
                .forward(net.forward(xi), y);
            let mut grads = loss.backward();
            let c = net.conv.as_ref().unwrap();
            let gw = vecf(c.weight.grad_remove(&mut grads).unwrap());
            let gb = vecf(c.bias.as_ref().unwrap().grad_remove(&mut grads).unwrap());
            close(
                &vecf(conv.weight.clone().slice([i..i + 1, 0..3, 0..18])),
                &gw,
                &format!("sample {i} conv weight"),
            );
            close(
                &vecf(conv.bias.clone().slice([i..i + 1, 0..3])),
                &gb,
                &format!("sample {i} conv bias"),
            );
            let fi = [0.5f32, 1.0, 0.25, 0.0, 2.0][i];
            for (w, g) in want_conv_sum.iter_mut().zip(&gw) {
                *w += fi * g;
            }
            let mut sq: f32 = gw.iter().chain(&gb).map(|g| g * g).sum();
            for l in &net.layers {
                let w = vecf(l.weight.grad_remove(&mut grads).unwrap());
                let bb = vecf(l.bias.as_ref().unwrap().grad_remove(&mut grads).unwrap());
                sq += w.iter().chain(&bb).map(|g| g * g).sum::<f32>();
            }
            close(&[norms[i]], &[sq.sqrt()], &format!("sample {i} norm"));
        }
        close(
            &vecf(sums.conv.unwrap().0),
            &want_conv_sum,
            "clipped conv weight sum",
        );
    }

    #[test]
    fn clipping_bounds_every_per_sample_gradient_and_the_sum_is_of_the_clipped_ones() {
        let (net, device, x) = net_and_batch(false, 3);
        let inner = device.inner();
        let xb = Tensor::<2>::from_data(
            TensorData::new(x.iter().map(|v| v * 5.0).collect(), [7, 5]),
            &inner,
        );
        let target = crate::dpsgd::Target::Classes {
            labels: vec![0, 2, 1, 1, 0, 2, 2],
            classes: 3,
        };
        let bp = crate::dpsgd::backprop(&net.dp_layers(), false, xb, &target);
        let norms = crate::dpsgd::per_sample_norms(&bp, true);
        let c = 0.05;
        assert!(
            vecf(norms.clone()).iter().any(|n| *n > c as f32 * 2.0),
            "some samples must be clipped"
        );
        let f = crate::dpsgd::clip_factors(norms, c);
        let fv = vecf(f.clone());
        let psg = crate::dpsgd::per_sample_gradients(&bp);
        let sums = crate::dpsgd::clipped_sums(&bp, &f);
        for (i, fi) in fv.iter().enumerate() {
            let mut sq = 0f32;
            for (gw, gb) in &psg {
                let [_, din, dout] = gw.dims();
                let w = vecf(gw.clone().slice([i..i + 1, 0..din, 0..dout]));
                let b = vecf(gb.clone().slice([i..i + 1, 0..dout]));
                sq += w.iter().chain(&b).map(|g| (g * fi).powi(2)).sum::<f32>();
            }
            assert!(
                sq.sqrt() <= c as f32 * (1.0 + 1e-4),
                "sample {i}: clipped norm {}",
                sq.sqrt()
            );
        }
        for (l, (gw, gb)) in psg.iter().enumerate() {
            let [b, din, dout] = gw.dims();
            let fw = f.clone().reshape([b, 1, 1]);
            let want_w = vecf((gw.clone() * fw).sum_dim(0).reshape([din, dout]));
            let want_b = vecf((gb.clone() * f.clone()).sum_dim(0).reshape([dout]));
            close(
                &vecf(sums.dense[l].0.clone()),
                &want_w,
                &format!("layer {l} clipped weight sum"),
            );
            close(
                &vecf(sums.dense[l].1.clone()),
                &want_b,
                &format!("layer {l} clipped bias sum"),
            );
        }
    }

    #[test]
    fn the_loss_curve_is_svg_with_one_point_per_epoch() {
        let log = |epoch, train_loss: f64, epsilon: Option<f64>| EpochLog {
            epoch,
            train_loss: epsilon.is_none().then_some(train_loss),
            epsilon,
            val_metric: None,
        };
        let svg = loss_curve_svg(&[log(1, 2.0, None), log(2, 1.0, None), log(3, 0.5, None)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(
            svg.contains(r#"points="48.0,48.0 320.0,180.0 592.0,246.0""#),
            "{svg}"
        );
        assert!(!svg.contains("epsilon"));
        let svg = loss_curve_svg(&[log(1, 1.0, Some(0.5)), log(2, 0.8, Some(1.0))]);
        assert!(svg.contains("epsilon (dashed), 0 to 1.000"), "{svg}");
        assert!(svg.contains("training loss not shown: DP run"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1);
    }

    #[test]
    fn a_base_model_of_another_shape_is_refused_naming_the_tensor() {
        let device = device();
        let st = |shape: Vec<usize>| {
            let n: usize = shape.iter().product();
            let data: Vec<u8> = vec![0u8; n * 4];
            let views = vec![(
                "layers.0.weight".to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &data)
                    .unwrap(),
            )];
            safetensors::serialize(views, None).unwrap()
        };
        let e = Net::new(&device, &[5, 3], false)
            .with_weights_from(&st(vec![3, 4]), &device)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`layers.0.weight` is F32 [3, 4]") && e.contains("[3, 5]"),
            "{e}"
        );
        let e = Net::new(&device, &[5, 3], false)
            .with_weights_from(&st(vec![3, 5]), &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tensor `layers.0.bias`"), "{e}");
        let e = Net::new(&device, &[5, 3], false)
            .with_weights_from(b"garbage", &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not safetensors"), "{e}");
    }

    #[test]
    fn f1_matches_hand_computed_values() {
        // Binary: tp 2, fp 1, fn 1 -> 4 / 6.
        let f = f1(&[1.0, 1.0, 1.0, 0.0, 0.0], &[1.0, 1.0, 0.0, 1.0, 0.0], 2);
        assert!((f - 4.0 / 6.0).abs() < 1e-12, "{f}");
        // Three classes: per-class F1 1, 1/2, 0 -> macro 1/2.
        let f = f1(&[0.0, 1.0, 1.0, 2.0], &[0.0, 1.0, 2.0, 1.0], 3);
        assert!((f - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-12, "{f}");
    }

    #[test]
    fn roc_auc_matches_hand_computed_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[0.0, 1.0]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.6], &[1.0, 1.0]), None);
    }

    #[test]
    fn labels_map_to_class_indices_in_value_order() {
        let csv =
            "id,f,y\na,1,7\nb,2,3\nc,3,7\nd,4,-1\ne,5,3\nf,6,7\ng,7,3\nh,8,-1\ni,9,7\nj,10,3\n";
        let t = crate::join::parse_csv("d", "f.csv", csv.as_bytes()).unwrap();
        let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "LogisticRegression"}
        }))
        .unwrap();
        let p = prepare(&t, &cfg, &["id".to_string()]).unwrap();
        assert_eq!(p.classes, vec!["-1", "3", "7"]);
        assert_eq!(p.y, vec![2.0, 1.0, 2.0, 0.0, 1.0, 2.0, 1.0, 0.0, 2.0, 1.0]);
        assert_eq!(
            p.features,
            vec!["f"],
            "identifiers and the target are not features"
        );
        assert_eq!(p.ids[3], "d");
    }

    #[test]
    fn standard_scaler_uses_training_rows_only() {
        let p = Prepared {
            features: vec!["a".into()],
            x: vec![1.0, 3.0, 100.0],
            y: vec![0.0, 1.0, 0.0],
            classes: vec!["0".into(), "1".into()],
            ids: vec!["0".into(), "1".into(), "2".into()],
        };
        let s = Scaler::fit("standard", &p, &[0, 1]);
        assert_eq!(s.offset, vec![2.0]);
        assert_eq!(s.scale, vec![1.0]);
    }
}

//! The network: a model graph ([`super::graph`]) however the pipeline describes it, its weights
//! read from a base model, prediction, and the training device.
//!
//! ccr's own models are graphs too, their layers named as `model.safetensors` has always named
//! them:
//! - `LogisticRegression`: one linear layer `layers.0` with one output per class (softmax
//!   cross-entropy, also for two classes); `LinearRegression`: one linear layer, one output;
//! - `MLP`: linear layers `layers.{i}` with `relu` or `tanh` between them;
//! - `CNN`: a 3×3 convolution `conv` (padding 1) with `relu` and 2×2 average pooling in front
//!   of an MLP (for instance the digits scenario's 8×8 images).
//!
//! A DEPA `model_config` graph keeps PyTorch's `ModelFactory` names (`_layers.<name>`).

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Value, json};

use super::TrainError;
use super::graph::{GraphSpec, SpecError};
use crate::pipeline::{Activation, ModelConfig, ModelName};

/// The network: a [`super::graph::GraphNet`].
pub type Net = super::graph::GraphNet;

/// The graph of one of ccr's own models (`model_config.name`) for `d` features and `out`
/// outputs, and the shape of one sample (`[d]`, or a CNN's `input_shape`).
///
/// # Errors
/// [`TrainError::Data`]: a CNN's `input_shape` that does not hold `d` features.
pub fn builtin_graph(
    mc: &ModelConfig,
    d: usize,
    out: usize,
) -> Result<(GraphSpec, Vec<usize>), TrainError> {
    let act = match mc.activation {
        Activation::Relu => "F.relu",
        Activation::Tanh => "F.tanh",
    };
    let mut layers = serde_json::Map::new();
    let mut forward = Vec::new();
    let mut widths = vec![d];
    let mut sample = vec![d];
    let mut h = "x".to_string();
    if let (ModelName::Cnn, Some(image), Some(ch)) = (mc.name, mc.input_shape, mc.conv_channels) {
        if image.iter().product::<usize>() != d {
            return Err(TrainError::Data(format!(
                "model_config.input_shape {image:?} has {} pixels, the data {d} features",
                image.iter().product::<usize>()
            )));
        }
        layers.insert(
            "conv".into(),
            json!({"class": "nn.Conv2d", "params": {"in_channels": image[0], "out_channels": ch, "kernel_size": 3, "padding": 1}}),
        );
        forward.push(json!({"ops": ["conv", "F.relu", ["F.avg_pool2d", {"kernel_size": 2}], ["torch.flatten", {"start_dim": 1}]],
                            "input": ["x"], "output": "c"}));
        h = "c".into();
        widths = vec![ch * (image[1] / 2) * (image[2] / 2)];
        sample = image.to_vec();
    }
    if matches!(mc.name, ModelName::Mlp | ModelName::Cnn) {
        widths.extend(&mc.hidden_layers);
    }
    widths.push(out);
    let n = widths.len() - 1;
    for i in 0..n {
        let name = format!("layers.{i}");
        layers.insert(
            name.clone(),
            json!({"class": "nn.Linear", "params": {"in_features": widths[i], "out_features": widths[i + 1]}}),
        );
        let ops: Vec<Value> = if i + 1 < n {
            vec![json!(name), json!(act)]
        } else {
            vec![json!(name)]
        };
        let o = format!("h{i}");
        forward.push(json!({"ops": ops, "input": [h], "output": o}));
        h = o;
    }
    let v = json!({"layers": layers, "input": ["x"], "forward": forward, "output": [h]});
    let spec = GraphSpec::parse(&v).map_err(|e| TrainError::Data(e.to_string()))?;
    Ok((spec, sample))
}

impl From<SpecError> for TrainError {
    fn from(e: SpecError) -> Self {
        TrainError::Data(e.to_string())
    }
}

/// The network with its parameters read from a safetensors base model by their `state_dict`
/// names (ccr's `layers.{i}.weight` `[out, in]`, `conv.weight`, or a DEPA graph's
/// `_layers.<name>.weight`), f32, with this network's shapes. `scaler.*` tensors (ccr's own
/// output) are not used: the scaler is fitted on this run's training split.
///
/// # Errors
/// [`TrainError::Data`] naming the tensor that is missing, not f32, of another shape, or not a
/// parameter of this network.
pub fn with_weights_from(net: Net, bytes: &[u8], device: &Device) -> Result<Net, TrainError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| TrainError::Data(format!("base model: not safetensors: {e}")))?;
    let want: Vec<String> = net.state_dict().into_iter().map(|t| t.name).collect();
    for (name, t) in st.tensors() {
        if name.starts_with("scaler.") || name.ends_with("num_batches_tracked") {
            continue;
        }
        if !want.contains(&name) {
            return Err(TrainError::Data(format!(
                "base model: tensor `{name}` is not a parameter of this pipeline's model (it has {})",
                want.join(", ")
            )));
        }
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(TrainError::Data(format!(
                "base model: `{name}` is {:?} {:?}, this pipeline's model needs F32",
                t.dtype(),
                t.shape()
            )));
        }
    }
    let get = |name: &str| {
        let t = st.tensor(name).ok()?;
        let v = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Some((t.shape().to_vec(), v))
    };
    net.load_state_dict(&get, device)
        .map_err(|e| TrainError::Data(format!("base model: {e}")))
}

pub(crate) fn backend_err(e: impl std::fmt::Debug) -> TrainError {
    TrainError::Backend(format!("{e:?}"))
}

/// The training device with autodiff: Burn's `flex` backend on the CPU; with the `gpu` cargo
/// feature and `CCR_DEVICE=cuda` (or `cuda:N`), Burn's CUDA backend on GPU N; with the `torch`
/// feature, `CCR_DEVICE=torch` (LibTorch on the CPU) or `torch-cuda` (or `torch-cuda:N`:
/// LibTorch on GPU N).
#[allow(deprecated)]
pub fn device() -> Device {
    let want = std::env::var("CCR_DEVICE").unwrap_or_default();
    let index = |rest: &str| -> usize { rest.trim_start_matches(':').parse().unwrap_or(0) };
    #[cfg(feature = "torch")]
    {
        if let Some(rest) = want.strip_prefix("torch-cuda") {
            return Device::libtorch_cuda(index(rest)).autodiff();
        }
        if want == "torch" {
            return Device::libtorch().autodiff();
        }
    }
    #[cfg(feature = "gpu")]
    if let Some(rest) = want.strip_prefix("cuda") {
        return Device::cuda(index(rest)).autodiff();
    }
    let _ = (want, index);
    Device::flex().autodiff()
}

/// Forward pass in evaluation mode (no dropout, BatchNorm's running statistics) on rows
/// (already scaled), returning `[n, out]` row-major outputs.
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
    use burn::module::Module;
    let eval = net.valid();
    let plain = device.clone().inner();
    let mut out = Vec::new();
    for start in (0..n).step_by(1024) {
        let end = (start + 1024).min(n);
        let xb = Tensor::<2>::from_data(
            TensorData::new(x[start * d..end * d].to_vec(), [end - start, d]),
            &plain,
        );
        let o = eval
            .forward(xb, false)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(backend_err)?;
        out.extend(o);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ModelConfig;

    fn logistic(d: usize, out: usize) -> Net {
        let mc: ModelConfig =
            serde_json::from_value(json!({"name": "LogisticRegression"})).unwrap();
        let (spec, sample) = builtin_graph(&mc, d, out).unwrap();
        Net::new(&spec, &sample, "", &device()).unwrap()
    }

    #[test]
    fn a_base_model_of_another_shape_is_refused_naming_the_tensor() {
        let _seeded = crate::learn::testing::seeded();
        let device = device();
        let st = |tensors: Vec<(&str, Vec<usize>)>| {
            let data: Vec<Vec<u8>> = tensors
                .iter()
                .map(|(_, s)| vec![0u8; s.iter().product::<usize>() * 4])
                .collect();
            let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
                .iter()
                .zip(&data)
                .map(|((n, s), d)| {
                    (
                        n.to_string(),
                        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                            .unwrap(),
                    )
                })
                .collect();
            safetensors::serialize(views, None).unwrap()
        };
        let e = with_weights_from(
            logistic(5, 3),
            &st(vec![
                ("layers.0.weight", vec![3, 4]),
                ("layers.0.bias", vec![3]),
            ]),
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`layers.0.weight` is [3, 4]") && e.contains("[3, 5]"),
            "{e}"
        );
        let e = with_weights_from(
            logistic(5, 3),
            &st(vec![("layers.0.weight", vec![3, 5])]),
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no tensor `layers.0.bias`"), "{e}");
        let e = with_weights_from(
            logistic(5, 3),
            &st(vec![
                ("layers.0.weight", vec![3, 5]),
                ("layers.0.bias", vec![3]),
                ("layers.1.weight", vec![3, 3]),
            ]),
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`layers.1.weight` is not a parameter"), "{e}");
        let e = with_weights_from(logistic(5, 3), b"garbage", &device)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not safetensors"), "{e}");
    }
}

//! The network with Burn: an optional convolution front and linear layers, its forward pass,
//! its weights read from a base model, and the training device.
//!
//! `LogisticRegression`: one linear layer with one output per class and softmax cross-entropy
//! (multinomial logistic regression, also for two classes). `LinearRegression`: one linear
//! layer, one output, mean squared error. `MLP`: linear layers with `relu` or `tanh` between.
//! `CNN`: one 3×3 convolution (padding 1) with `relu` and 2×2 average pooling in front of an
//! MLP (for instance the digits scenario's 8×8 images).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};

use super::TrainError;

/// The network: an optional convolution front (3×3, padding 1, `relu`, 2×2 average pooling)
/// and linear layers with an activation between them.
#[derive(Module, Debug)]
pub struct Net {
    /// The CNN front (`None` for dense networks).
    pub(crate) conv: Option<Conv2d>,
    /// The linear layers, input first.
    pub(crate) layers: Vec<Linear>,
    /// `tanh` (else `relu`) between dense layers.
    #[module(skip)]
    pub(crate) tanh: bool,
    /// `[channels, height, width]` of the CNN input.
    #[module(skip)]
    pub(crate) image: Option<[usize; 3]>,
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
    /// Dense layers of widths `dims` (input first) with `tanh` (else `relu`) between them.
    pub(crate) fn new(device: &Device, dims: &[usize], tanh: bool) -> Self {
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
    pub(crate) fn cnn(
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

pub(crate) fn backend_err(e: impl std::fmt::Debug) -> TrainError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

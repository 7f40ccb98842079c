//! DP-SGD (Abadi et al. 2016) for the linear-layer networks of [`crate::learn::model`]: Poisson
//! sampling, per-sample gradient clipping to `max_grad_norm` (flat, over all parameters),
//! Gaussian noise of standard deviation `noise_multiplier × max_grad_norm`, averaged over the
//! expected batch size — the same step as Opacus's `DPOptimizer` with `loss_reduction="mean"`.
//!
//! # Per-sample gradients without a loop over samples
//! For a linear layer `z = a W + b` (`a`: `[B, in]`, `W`: `[in, out]`), sample `i`'s gradient is
//! `∂ℓᵢ/∂W = aᵢᵀ δᵢ` and `∂ℓᵢ/∂b = δᵢ`, where `δᵢ = ∂ℓᵢ/∂zᵢ` is the layer's output gradient
//! for that sample — what Opacus's per-sample-gradient hooks compute from the layer inputs and
//! output gradients. Here the backward pass is written out for the network (so the output
//! gradients are per sample by construction: the loss is a sum over samples) and nothing of size
//! `B × in × out` is made:
//! - the squared norm of `aᵢᵀ δᵢ` is `‖aᵢ‖² ‖δᵢ‖²` (a rank-one matrix), so the per-sample norm
//!   over every layer is `√Σₗ ‖δₗᵢ‖² (‖aₗ₋₁ᵢ‖² + 1)` (the `+ 1` is the bias);
//! - the clipped sum is `Σᵢ cᵢ aᵢᵀ δᵢ = aᵀ (c ⊙ δ)`: one matrix product per layer, with
//!   `cᵢ = min(1, C / (‖gᵢ‖ + 10⁻⁶))` (Opacus's clip factor).
//!
//! For the CNN's convolution (3×3, padding 1), sample `i`'s weight gradient is
//! `δᵢ Uᵢᵀ` (`δᵢ`: `[out, H·W]` output gradient, `Uᵢ`: `[in·9, H·W]` the unfolded input
//! patches, as Opacus's `unfold2d` hook does), made for the whole batch in one batched
//! product `[B, out, in·9]`; its bias gradient is `δᵢ` summed over positions.
//!
//! [`per_sample_gradients`] materialises the dense layers' too, for the tests that check the
//! shortcut.
//!
//! # Randomness
//! Poisson sampling and the noise draw from ChaCha20 seeded by the operating system, never from
//! the pipeline's `random_state`: the pipeline is public to every party, and noise or a batch
//! choice that a party can replay gives no privacy. A DP run is therefore not bit-reproducible.

use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

use crate::learn::loss::{Target, loss_and_gradient};
use crate::learn::model::{KERNEL, Net, conv_options, pool_options};

/// One layer's parameters, without autodiff: `weight` `[in, out]`, `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
}

/// The CNN's convolution, without autodiff: `weight` `[out, in, 3, 3]`, `bias` `[out]`, and
/// the input image shape `[in, height, width]`.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    /// `[out, in, 3, 3]`.
    pub weight: Tensor<4>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
    /// `[in, height, width]`.
    pub image: [usize; 3],
}

/// The convolution's per-sample gradients: weight `[B, out, in·9]`, bias `[B, out]`.
#[derive(Debug)]
pub struct ConvGrads {
    /// `[B, out, in·9]`.
    pub weight: Tensor<3>,
    /// `[B, out]`.
    pub bias: Tensor<2>,
}

/// The forward and backward pass of a batch: each dense layer's input and output gradient, and
/// the convolution's per-sample gradients.
#[derive(Debug)]
pub struct Backprop {
    /// Dense layer inputs `aₗ₋₁`, `[B, inₗ]`, one per layer.
    pub inputs: Vec<Tensor<2>>,
    /// Dense layer output gradients `δₗ` of the summed loss, `[B, outₗ]`, one per layer.
    pub deltas: Vec<Tensor<2>>,
    /// The convolution's per-sample gradients (a CNN).
    pub conv: Option<ConvGrads>,
    /// The summed loss over the batch.
    pub loss_sum: f64,
    zeros: Tensor<2>,
}

/// Gradient sums per parameter: dense layers `(weight [in, out], bias [out])`, the convolution
/// `(weight [out, in, 3, 3], bias [out])`.
#[derive(Debug)]
pub struct Sums {
    /// Dense layers.
    pub dense: Vec<(Tensor<2>, Tensor<1>)>,
    /// The convolution.
    pub conv: Option<(Tensor<4>, Tensor<1>)>,
}

/// Forward and backward through dense `layers` (activation `relu`, or `tanh`, between
/// layers; none after the last) for a batch `x` `[B, in]`; also returns the gradient of the
/// summed loss with respect to `x` when `input_grad`.
fn dense(
    layers: &[Layer],
    tanh: bool,
    x: Tensor<2>,
    target: &Target,
    input_grad: bool,
) -> (Backprop, Option<Tensor<2>>) {
    let device = x.device();
    let b = x.dims()[0];
    let mut inputs = Vec::with_capacity(layers.len());
    let mut pre = Vec::with_capacity(layers.len());
    let mut h = x;
    for (i, l) in layers.iter().enumerate() {
        inputs.push(h.clone());
        let mut z = h.matmul(l.weight.clone());
        if let Some(bias) = &l.bias {
            z = z + bias.clone().unsqueeze_dim(0);
        }
        h = if i + 1 < layers.len() {
            if tanh {
                burn::tensor::activation::tanh(z.clone())
            } else {
                burn::tensor::activation::relu(z.clone())
            }
        } else {
            z.clone()
        };
        pre.push(z);
    }
    let out = h;
    let (mut delta, loss_sum) = loss_and_gradient(out, target);
    let mut deltas = vec![delta.clone(); layers.len()];
    let mut x_grad = None;
    for l in (0..layers.len()).rev() {
        deltas[l] = delta.clone();
        if l == 0 && !input_grad {
            break;
        }
        let back = delta.clone().matmul(layers[l].weight.clone().transpose());
        if l == 0 {
            x_grad = Some(back);
            break;
        }
        let slope = if tanh {
            let a = inputs[l].clone();
            a.clone().mul(a).neg().add_scalar(1.0)
        } else {
            pre[l - 1].clone().greater_elem(0.0).float()
        };
        delta = back.mul(slope);
    }
    (
        Backprop {
            inputs,
            deltas,
            conv: None,
            loss_sum,
            zeros: Tensor::<2>::zeros([b, 1], &device),
        },
        x_grad,
    )
}

/// Forward and backward through dense `layers` for a batch `x` `[B, in]` (see [`backprop_net`]).
pub fn backprop(layers: &[Layer], tanh: bool, x: Tensor<2>, target: &Target) -> Backprop {
    dense(layers, tanh, x, target, false).0
}

/// Forward and backward through the network: the convolution front when `conv` is given
/// (the rows of `x` are images `conv.image`; convolution, `relu`, 2×2 average pooling,
/// flattening), then the dense `layers`.
pub fn backprop_net(
    conv: Option<&ConvLayer>,
    layers: &[Layer],
    tanh: bool,
    x: Tensor<2>,
    target: &Target,
) -> Backprop {
    let Some(c) = conv else {
        return backprop(layers, tanh, x, target);
    };
    let b = x.dims()[0];
    let [ci, hh, ww] = c.image;
    let x4 = x.reshape([b, ci, hh, ww]);
    let z =
        burn::tensor::module::conv2d(x4.clone(), c.weight.clone(), c.bias.clone(), conv_options());
    let a = burn::tensor::activation::relu(z.clone());
    let pooled = burn::tensor::module::avg_pool2d(a.clone(), pool_options());
    let [_, co, ph, pw] = pooled.dims();
    let flat = pooled.reshape([b, co * ph * pw]);
    let (mut bp, x_grad) = dense(layers, tanh, flat, target, true);
    let Some(g_flat) = x_grad else {
        return bp;
    };
    let g_pool = g_flat.reshape([b, co, ph, pw]);
    let g_a =
        burn::tensor::module::avg_pool2d_backward(a, g_pool, [2, 2], [2, 2], [0, 0], true, false);
    let g_z = g_a
        .mul(z.greater_elem(0.0).float())
        .reshape([b, co, hh * ww]);
    let k = KERNEL;
    let patches = burn::tensor::module::unfold4d(
        x4,
        [k, k],
        burn::tensor::ops::UnfoldOptions::new([1, 1], [1, 1], [1, 1]),
    );
    bp.conv = Some(ConvGrads {
        weight: g_z.clone().matmul(patches.swap_dims(1, 2)),
        bias: g_z.sum_dim(2).reshape([b, co]),
    });
    bp
}

/// Per-sample gradient norms over every parameter, `[B, 1]`:
/// `√(Σₗ ‖δₗᵢ‖² (‖aₗ₋₁ᵢ‖² + [bias]) + ‖convᵢ‖²)`.
pub fn per_sample_norms(bp: &Backprop, with_bias: bool) -> Tensor<2> {
    let mut total = bp.zeros.clone();
    for (a, d) in bp.inputs.iter().zip(&bp.deltas) {
        let an = a.clone().powf_scalar(2.0).sum_dim(1);
        let dn = d.clone().powf_scalar(2.0).sum_dim(1);
        let an = if with_bias { an.add_scalar(1.0) } else { an };
        total = total + dn.mul(an);
    }
    if let Some(c) = &bp.conv {
        let [b, _, _] = c.weight.dims();
        let w = c
            .weight
            .clone()
            .powf_scalar(2.0)
            .sum_dim(2)
            .sum_dim(1)
            .reshape([b, 1]);
        total = total + w;
        if with_bias {
            total = total + c.bias.clone().powf_scalar(2.0).sum_dim(1);
        }
    }
    total.sqrt()
}

/// Opacus's clip factors `min(1, C / (norm + 10⁻⁶))`, `[B, 1]`.
pub fn clip_factors(norms: Tensor<2>, max_grad_norm: f64) -> Tensor<2> {
    norms
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_grad_norm)
        .clamp_max(1.0)
}

/// The clipped sums: per dense layer `aₗ₋₁ᵀ (c ⊙ δₗ)` `[in, out]` and `Σᵢ cᵢ δₗᵢ` `[out]`;
/// for the convolution `Σᵢ cᵢ Gᵢ` `[out, in, 3, 3]` and its bias.
pub fn clipped_sums(bp: &Backprop, factors: &Tensor<2>) -> Sums {
    let dense = bp
        .inputs
        .iter()
        .zip(&bp.deltas)
        .map(|(a, d)| {
            let cd = d.clone().mul(factors.clone());
            let gw = a.clone().transpose().matmul(cd.clone());
            let gb = cd.sum_dim(0).squeeze_dim::<1>(0);
            (gw, gb)
        })
        .collect();
    let conv = bp.conv.as_ref().map(|c| {
        let [b, co, ck] = c.weight.dims();
        let k = KERNEL;
        let w = c
            .weight
            .clone()
            .mul(factors.clone().reshape([b, 1, 1]))
            .sum_dim(0)
            .reshape([co, ck / (k * k), k, k]);
        let bias = c.bias.clone().mul(factors.clone()).sum_dim(0).reshape([co]);
        (w, bias)
    });
    Sums { dense, conv }
}

/// Zero sums of the network's shapes (a step whose Poisson batch is empty adds noise only).
pub fn zero_sums(layers: &[Layer], conv: Option<&ConvLayer>) -> Sums {
    Sums {
        dense: layers
            .iter()
            .map(|l| {
                let device = l.weight.device();
                let [i, o] = l.weight.dims();
                (
                    Tensor::<2>::zeros([i, o], &device),
                    Tensor::<1>::zeros([o], &device),
                )
            })
            .collect(),
        conv: conv.map(|c| {
            let device = c.weight.device();
            let dims = c.weight.dims();
            (
                Tensor::<4>::zeros(dims, &device),
                Tensor::<1>::zeros([dims[0]], &device),
            )
        }),
    }
}

/// Every sample's dense-layer gradient, materialised: `[layer] → (∂ℓᵢ/∂W [B, in, out],
/// ∂ℓᵢ/∂b [B, out])` (for tests; training uses [`per_sample_norms`] and [`clipped_sums`]).
pub fn per_sample_gradients(bp: &Backprop) -> Vec<(Tensor<3>, Tensor<2>)> {
    bp.inputs
        .iter()
        .zip(&bp.deltas)
        .map(|(a, d)| {
            let gw = a
                .clone()
                .unsqueeze_dim::<3>(2)
                .matmul(d.clone().unsqueeze_dim::<3>(1));
            (gw, d.clone())
        })
        .collect()
}

/// `sums` times `factor` (the mean over a batch of `1 / factor` rows).
pub fn scale_sums(sums: Sums, factor: f64) -> Sums {
    Sums {
        dense: sums
            .dense
            .into_iter()
            .map(|(w, b)| (w.mul_scalar(factor), b.mul_scalar(factor)))
            .collect(),
        conv: sums
            .conv
            .map(|(w, b)| (w.mul_scalar(factor), b.mul_scalar(factor))),
    }
}

/// The randomness of a DP run: ChaCha20 seeded from the operating system.
pub struct DpRng(ChaCha20Rng);

impl std::fmt::Debug for DpRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpRng(..)")
    }
}

impl DpRng {
    /// Seeded from the OS CSPRNG.
    pub fn from_os() -> Self {
        Self(ChaCha20Rng::from_entropy())
    }

    /// Seeded from `seed` (tests only: a known seed gives no privacy).
    pub fn for_tests(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }

    /// Poisson sampling: each of `rows` kept with probability `q`.
    pub fn poisson(&mut self, rows: &[usize], q: f64) -> Vec<usize> {
        rows.iter()
            .copied()
            .filter(|_| self.0.gen_bool(q))
            .collect()
    }

    /// `n` draws from N(0, std²).
    pub fn gaussian(&mut self, n: usize, std: f64) -> Vec<f32> {
        match Normal::new(0.0, std) {
            Ok(d) => (0..n).map(|_| d.sample(&mut self.0) as f32).collect(),
            Err(_) => vec![0.0; n],
        }
    }
}

pub(crate) fn noisy<const D: usize>(
    g: Tensor<D>,
    std: f64,
    expected: f64,
    rng: &mut DpRng,
) -> Tensor<D> {
    let device = g.device();
    let dims = g.dims();
    let n = dims.iter().product();
    let noise = Tensor::<D>::from_data(TensorData::new(rng.gaussian(n, std), dims), &device);
    (g + noise).div_scalar(expected)
}

/// The noisy averaged gradients of one DP-SGD step, of the shapes of `sums`:
/// `(Σᵢ clip(gᵢ) + N(0, σ²C²)) / expected_batch`.
pub fn noisy_step(
    sums: Sums,
    noise_multiplier: f64,
    max_grad_norm: f64,
    expected_batch: f64,
    rng: &mut DpRng,
) -> Sums {
    let std = noise_multiplier * max_grad_norm;
    Sums {
        dense: sums
            .dense
            .into_iter()
            .map(|(w, b)| {
                (
                    noisy(w, std, expected_batch, rng),
                    noisy(b, std, expected_batch, rng),
                )
            })
            .collect(),
        conv: sums.conv.map(|(w, b)| {
            (
                noisy(w, std, expected_batch, rng),
                noisy(b, std, expected_batch, rng),
            )
        }),
    }
}

/// A network's convolution parameters without autodiff: weight `[out, in, 3, 3]`, bias `[out]`,
/// and the image shape.
pub fn conv_of(net: &Net) -> Option<ConvLayer> {
    match (&net.conv, net.image) {
        (Some(c), Some(image)) => Some(ConvLayer {
            weight: c.weight.val().inner(),
            bias: c.bias.as_ref().map(|b| b.val().inner()),
            image,
        }),
        _ => None,
    }
}

/// A network's layer parameters without autodiff, for DP-SGD's own backward pass.
pub fn layers_of(net: &Net) -> Vec<Layer> {
    net.layers
        .iter()
        .map(|l| Layer {
            weight: l.weight.val().inner(),
            bias: l.bias.as_ref().map(|b| b.val().inner()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::loss::RegressionLoss;
    use crate::learn::model::{Net, device};
    use crate::learn::testing::{close, vecf};
    use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
    use burn::tensor::Device;
    use burn::tensor::Int;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A network and a batch: 7 samples, 5 features, hidden 6 and 4, `out` outputs.
    fn net_and_batch(tanh: bool, out: usize) -> (Net, Device, Vec<f32>) {
        let device = device();
        device.seed(3);
        let net = Net::new(&device, &[5, 6, 4, out], tanh);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f32> = (0..7 * 5)
            .map(|_| Rng::gen_range(&mut rng, -2.0..2.0))
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
                Target::Classes {
                    labels: labels.to_vec(),
                    classes: 3,
                    label_smoothing: 0.0,
                }
            } else {
                Target::Values(values.to_vec(), RegressionLoss::Mse)
            };
            let inner = device.clone().inner();
            let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [7, 5]), &inner);
            let bp = backprop(&layers_of(&net), tanh, xb, &target);
            let psg = per_sample_gradients(&bp);
            let norms = vecf(per_sample_norms(&bp, true));
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
            .map(|_| Rng::gen_range(&mut rng, -1.0..1.0))
            .collect();
        let labels = [3usize, 0, 2, 1, 3];
        let inner = device.clone().inner();
        let bp = backprop_net(
            conv_of(&net).as_ref(),
            &layers_of(&net),
            false,
            Tensor::<2>::from_data(TensorData::new(x.clone(), [b, 48]), &inner),
            &Target::Classes {
                labels: labels.to_vec(),
                classes: 4,
                label_smoothing: 0.0,
            },
        );
        let norms = vecf(per_sample_norms(&bp, true));
        let conv = bp.conv.as_ref().unwrap();
        let f = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, 1.0, 0.25, 0.0, 2.0], [b, 1]),
            &inner,
        );
        let sums = clipped_sums(&bp, &f);
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
        let target = Target::Classes {
            labels: vec![0, 2, 1, 1, 0, 2, 2],
            classes: 3,
            label_smoothing: 0.0,
        };
        let bp = backprop(&layers_of(&net), false, xb, &target);
        let norms = per_sample_norms(&bp, true);
        let c = 0.05;
        assert!(
            vecf(norms.clone()).iter().any(|n| *n > c as f32 * 2.0),
            "some samples must be clipped"
        );
        let f = clip_factors(norms, c);
        let fv = vecf(f.clone());
        let psg = per_sample_gradients(&bp);
        let sums = clipped_sums(&bp, &f);
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
}

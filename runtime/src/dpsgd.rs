//! DP-SGD (Abadi et al. 2016) for the linear-layer networks of [`crate::train`]: Poisson
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
//! [`per_sample_gradients`] materialises them all, for the tests that check the shortcut.
//!
//! # Randomness
//! Poisson sampling and the noise draw from ChaCha20 seeded by the operating system, never from
//! the pipeline's `random_state`: the pipeline is public to every party, and noise or a batch
//! choice that a party can replay gives no privacy. A DP run is therefore not bit-reproducible.

use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

/// The loss of the task.
#[derive(Debug, Clone)]
pub enum Target {
    /// Softmax cross-entropy over `classes` with class indices (`ℓᵢ = logsumexp(zᵢ) − zᵢ[yᵢ]`).
    Classes {
        /// Class index per sample.
        labels: Vec<usize>,
        /// Number of classes (the output width).
        classes: usize,
    },
    /// Squared error against one output (`ℓᵢ = (zᵢ − yᵢ)²`).
    Values(Vec<f32>),
}

/// One layer's parameters, without autodiff: `weight` `[in, out]`, `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `[in, out]`.
    pub weight: Tensor<2>,
    /// `[out]`.
    pub bias: Option<Tensor<1>>,
}

/// The forward and backward pass of a batch: each layer's input and output gradient.
#[derive(Debug)]
pub struct Backprop {
    /// Layer inputs `aₗ₋₁`, `[B, inₗ]`, one per layer.
    pub inputs: Vec<Tensor<2>>,
    /// Layer output gradients `δₗ` of the summed loss, `[B, outₗ]`, one per layer.
    pub deltas: Vec<Tensor<2>>,
    /// The summed loss over the batch.
    pub loss_sum: f64,
}

fn f32s<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Forward and backward through `layers` (activation `relu`, or `tanh`, between layers; none
/// after the last) for a batch `x` `[B, in]`.
pub fn backprop(layers: &[Layer], tanh: bool, x: Tensor<2>, target: &Target) -> Backprop {
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
    let (mut delta, loss_sum) = match target {
        Target::Classes { labels, classes } => {
            let mut onehot = vec![0f32; b * classes];
            for (i, &y) in labels.iter().enumerate() {
                onehot[i * classes + y] = 1.0;
            }
            let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, *classes]), &device);
            let logp = burn::tensor::activation::log_softmax(out, 1);
            let loss = -f64::from(
                f32s(logp.clone().mul(onehot.clone()).sum())
                    .first()
                    .copied()
                    .unwrap_or(0.0),
            );
            (logp.exp() - onehot, loss)
        }
        Target::Values(y) => {
            let y = Tensor::<2>::from_data(TensorData::new(y.clone(), [b, 1]), &device);
            let r = out - y;
            let loss = f64::from(
                f32s(r.clone().powf_scalar(2.0).sum())
                    .first()
                    .copied()
                    .unwrap_or(0.0),
            );
            (r.mul_scalar(2.0), loss)
        }
    };
    let mut deltas = vec![delta.clone(); layers.len()];
    for l in (0..layers.len()).rev() {
        deltas[l] = delta.clone();
        if l == 0 {
            break;
        }
        let back = delta.matmul(layers[l].weight.clone().transpose());
        let slope = if tanh {
            let a = inputs[l].clone();
            a.clone().mul(a).neg().add_scalar(1.0)
        } else {
            pre[l - 1].clone().greater_elem(0.0).float()
        };
        delta = back.mul(slope);
    }
    Backprop {
        inputs,
        deltas,
        loss_sum,
    }
}

/// Per-sample gradient norms over every parameter, `[B, 1]`:
/// `√Σₗ ‖δₗᵢ‖² (‖aₗ₋₁ᵢ‖² + [bias])`; `None` for a network without layers.
pub fn per_sample_norms(bp: &Backprop, with_bias: bool) -> Option<Tensor<2>> {
    let layer = |(a, d): (&Tensor<2>, &Tensor<2>)| {
        let an = a.clone().powf_scalar(2.0).sum_dim(1);
        let dn = d.clone().powf_scalar(2.0).sum_dim(1);
        let an = if with_bias { an.add_scalar(1.0) } else { an };
        dn.mul(an)
    };
    let mut it = bp.inputs.iter().zip(&bp.deltas);
    let first = it.next().map(layer);
    first.map(|f| it.map(layer).fold(f, |s, t| s + t).sqrt())
}

/// Opacus's clip factors `min(1, C / (norm + 10⁻⁶))`, `[B, 1]`.
pub fn clip_factors(norms: Tensor<2>, max_grad_norm: f64) -> Tensor<2> {
    norms
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_grad_norm)
        .clamp_max(1.0)
}

/// The clipped sums `aₗ₋₁ᵀ (c ⊙ δₗ)` `[in, out]` and `Σᵢ cᵢ δₗᵢ` `[out]`, per layer.
pub fn clipped_sums(bp: &Backprop, factors: &Tensor<2>) -> Vec<(Tensor<2>, Tensor<1>)> {
    bp.inputs
        .iter()
        .zip(&bp.deltas)
        .map(|(a, d)| {
            let cd = d.clone().mul(factors.clone());
            let gw = a.clone().transpose().matmul(cd.clone());
            let gb = cd.sum_dim(0).squeeze_dim::<1>(0);
            (gw, gb)
        })
        .collect()
}

/// Every sample's gradient, materialised: `[layer] → (∂ℓᵢ/∂W [B, in, out], ∂ℓᵢ/∂b [B, out])`
/// (for tests and small checks; training uses [`per_sample_norms`] and [`clipped_sums`]).
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

/// The noisy averaged gradients of one DP-SGD step, per layer `(weight [in, out], bias [out])`:
/// `(Σᵢ clip(gᵢ) + N(0, σ²C²)) / expected_batch`.
pub fn noisy_step(
    sums: Vec<(Tensor<2>, Tensor<1>)>,
    noise_multiplier: f64,
    max_grad_norm: f64,
    expected_batch: f64,
    rng: &mut DpRng,
) -> Vec<(Tensor<2>, Tensor<1>)> {
    let std = noise_multiplier * max_grad_norm;
    sums.into_iter()
        .map(|(gw, gb)| {
            let device = gw.device();
            let [i, o] = gw.dims();
            let nw =
                Tensor::<2>::from_data(TensorData::new(rng.gaussian(i * o, std), [i, o]), &device);
            let nb = Tensor::<1>::from_data(TensorData::new(rng.gaussian(o, std), [o]), &device);
            (
                (gw + nw).div_scalar(expected_batch),
                (gb + nb).div_scalar(expected_batch),
            )
        })
        .collect()
}

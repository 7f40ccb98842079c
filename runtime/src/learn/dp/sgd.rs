//! DP-SGD (Abadi et al. 2016): Poisson sampling, per-sample gradient clipping to
//! `max_grad_norm` (flat, over all parameters), Gaussian noise of standard deviation
//! `noise_multiplier × max_grad_norm`, averaged over the expected batch size — the same step as
//! Opacus's `DPOptimizer` with `loss_reduction="mean"`.
//!
//! The per-sample norms and the clipped sum come from each layer's input and output gradient
//! ([`crate::learn::graph::per_sample`], one forward and one backward pass for any graph); this
//! module holds the step's randomness and its noise.
//!
//! # Randomness
//! Poisson sampling and the noise draw from ChaCha20 seeded by the operating system, never from
//! the pipeline's `random_state`: the pipeline is public to every party, and noise or a batch
//! choice that a party can replay gives no privacy. A DP run is therefore not bit-reproducible.

use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

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

    /// A uniform 64-bit draw (seeds of LoRA dropout masks).
    pub fn next_u64(&mut self) -> u64 {
        self.0.r#gen()
    }

    /// `n` draws from N(0, std²).
    pub fn gaussian(&mut self, n: usize, std: f64) -> Vec<f32> {
        match Normal::new(0.0, std) {
            Ok(d) => (0..n).map(|_| d.sample(&mut self.0) as f32).collect(),
            Err(_) => vec![0.0; n],
        }
    }
}

/// `(g + N(0, std²)) / expected`: one parameter's noisy averaged gradient.
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

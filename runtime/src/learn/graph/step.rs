//! One batch's parameter gradients for a [`GraphNet`]: plain (autodiff of the batch loss) or
//! DP-SGD's clipped sum (per-sample norms from [`per_sample`], one forward and one backward
//! pass, no per-sample backward); a dense chain takes [`super::dense`]'s written-out pass.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use super::net::GraphNet;
use super::ops::{Val, each};
use super::per_sample;
use crate::learn::loss::{Target, loss_and_gradient};

pub use super::ops::Grads;

/// The forward pass on `x` (`[B, features]`, on the autodiff device) and the backward pass of
/// `Σᵢ wᵢ ℓᵢ`, through the surrogate `Σ out ⊙ stop_grad(∂ℓ/∂out ⊙ w)`; returns the outputs'
/// summed loss. `weights`: per-sample factors (`None`: 1).
fn backward(
    net: &GraphNet,
    x: Tensor<2>,
    target: &Target,
    probes: Option<&mut Vec<super::net::ProbeRecord>>,
) -> (burn::tensor::Gradients, f64) {
    let out = net.forward_probed(x, true, probes);
    let (delta, loss_sum) = loss_and_gradient(out.clone().detach().inner(), target);
    let surrogate = (out * Tensor::from_inner(delta)).sum();
    (surrogate.backward(), loss_sum)
}

/// The gradient of the batch's summed loss (`scale` multiplies it: `1/B` for a mean loss) for
/// the optimizer, and the summed loss.
pub fn plain(net: &GraphNet, x: Tensor<2>, target: &Target, scale: f64) -> (GradientsParams, f64) {
    if let Some(chain) = &net.dense {
        let (g, loss) = super::dense::grads(net, chain, x.inner(), target, None);
        return (to_params(map(g, |v| scaled(v, scale))), loss);
    }
    plain_autodiff(net, x, target, scale)
}

/// [`plain`] through autodiff, whatever the graph.
pub(crate) fn plain_autodiff(
    net: &GraphNet,
    x: Tensor<2>,
    target: &Target,
    scale: f64,
) -> (GradientsParams, f64) {
    let (grads, loss_sum) = backward(net, x, target, None);
    let mut g = GradientsParams::from_grads(grads, net);
    if scale != 1.0 {
        let ids: Vec<(ParamId, usize)> =
            shapes(net).into_iter().map(|(i, s)| (i, s.len())).collect();
        for (id, rank) in ids {
            match rank {
                1 => scale_one::<1>(&mut g, id, scale),
                2 => scale_one::<2>(&mut g, id, scale),
                3 => scale_one::<3>(&mut g, id, scale),
                _ => scale_one::<4>(&mut g, id, scale),
            }
        }
    }
    (g, loss_sum)
}

fn scale_one<const D: usize>(g: &mut GradientsParams, id: ParamId, s: f64) {
    if let Some(t) = g.remove::<D>(id) {
        g.register(id, t.mul_scalar(s));
    }
}

/// DP-SGD's clipped sum `Σᵢ min(1, C / (‖gᵢ‖ + 10⁻⁶)) gᵢ` over the batch (Opacus's clip
/// factor), per parameter, and the summed loss; the per-sample norms are over every parameter.
pub fn clipped(net: &GraphNet, x: Tensor<2>, target: &Target, max_grad_norm: f64) -> (Grads, f64) {
    if let Some(chain) = &net.dense {
        return super::dense::grads(net, chain, x.inner(), target, Some(max_grad_norm));
    }
    clipped_probes(net, x, target, max_grad_norm)
}

/// [`clipped`] through the probes of [`per_sample`], whatever the graph.
pub(crate) fn clipped_probes(
    net: &GraphNet,
    x: Tensor<2>,
    target: &Target,
    max_grad_norm: f64,
) -> (Grads, f64) {
    // Parameters untracked: the backward pass then computes only the probes' (the layers'
    // output) gradients, not the batch's parameter gradients, which DP-SGD does not use.
    let frozen = net.clone().no_grad();
    let mut records = Vec::new();
    let (grads, loss_sum) = backward(&frozen, x, target, Some(&mut records));
    let pieces = per_sample::pieces(&frozen, &records, &grads);
    let norms = per_sample_norms(&pieces);
    let factors = norms
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_grad_norm)
        .clamp_max(1.0);
    let sums = pieces
        .iter()
        .map(|(id, p)| (*id, p.weighted_sum(&factors)))
        .collect();
    (sums, loss_sum)
}

/// Each sample's gradient norm over every parameter, `[B]`.
pub fn per_sample_norms(pieces: &[(ParamId, per_sample::Piece)]) -> Tensor<1> {
    let mut it = pieces.iter().map(|(_, p)| p.sq_norms());
    let first = it.next().expect("a trainable graph has parameters");
    it.fold(first, |a, b| a + b).sqrt()
}

/// Every trainable parameter's id and shape (Burn's layout), in module order.
pub fn shapes(net: &GraphNet) -> Vec<(ParamId, Vec<usize>)> {
    struct V(Vec<(ParamId, Vec<usize>)>);
    impl ModuleVisitor for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.0.push((p.id, p.dims().to_vec()));
        }
    }
    let mut v = V(Vec::new());
    net.visit(&mut v);
    v.0
}

/// Zero gradients of every parameter (a DP step whose Poisson sample is empty).
pub fn zeros(net: &GraphNet, device: &burn::tensor::Device) -> Grads {
    shapes(net)
        .into_iter()
        .map(|(id, s)| {
            let n = s.iter().product::<usize>();
            (id, Val::R1(Tensor::<1>::zeros([n], device)).reshape(&s))
        })
        .collect()
}

fn scaled(v: Val, s: f64) -> Val {
    if s == 1.0 {
        v
    } else {
        each!(v, t => t.mul_scalar(s))
    }
}

/// Applies `f` to each gradient (noise, scaling).
pub fn map(g: Grads, mut f: impl FnMut(Val) -> Val) -> Grads {
    g.into_iter().map(|(id, v)| (id, f(v))).collect()
}

/// The gradients for the optimizer (moved to the autodiff device's parameters).
pub fn to_params(g: Grads) -> GradientsParams {
    let mut out = GradientsParams::new();
    for (id, v) in g {
        match v {
            Val::R1(t) => out.register(id, t),
            Val::R2(t) => out.register(id, t),
            Val::R3(t) => out.register(id, t),
            Val::R4(t) => out.register(id, t),
        }
    }
    out
}

/// Adds Gaussian noise of standard deviation `std` and divides by `expected` (DP-SGD's step).
pub fn noisy(v: Val, std: f64, expected: f64, rng: &mut crate::learn::dp::sgd::DpRng) -> Val {
    each!(v, t => crate::learn::dp::sgd::noisy(t, std, expected, rng))
}

//! The dense fast path: a graph that is a chain of linear layers with `relu` or `tanh` between
//! them (none after the last) — ccr's `LogisticRegression`, `LinearRegression` and `MLP` —
//! trains through a backward pass written out for it, with no autodiff graph to build per
//! batch: each layer's input `a` and output gradient `δ` (per sample, as the loss is a sum over
//! samples) give the batch gradient `aᵀ (c ⊙ δ)` and, under DP, the per-sample norms
//! `√Σₗ ‖δₗᵢ‖² (‖aₗ₋₁ᵢ‖² + [bias])` without any `B × in × out` tensor. Other graphs go through
//! autodiff and [`super::per_sample`]; both give the same numbers (the tests check it).

use burn::tensor::Tensor;

use super::net::{Chain, GraphNet, ParamLayer, Slot};
use super::ops::{Func, Grads, Val};
use super::spec::{LayerClass, Op};
use crate::learn::loss::{Target, loss_and_gradient};

impl GraphNet {
    /// The graph as a dense chain, when it is one (see the module docs); kept in
    /// [`GraphNet::dense`].
    pub(crate) fn dense_chain(&self) -> Option<Chain> {
        let plan = &self.plan;
        if plan.spec.inputs.len() != 1 || self.sample_shape.len() != 1 {
            return None;
        }
        let mut flat: Vec<Result<usize, Func>> = Vec::new();
        let mut current = plan.spec.inputs[0].as_str();
        for step in &plan.spec.steps {
            if step.inputs.len() != 1 || step.inputs[0] != current {
                return None;
            }
            for op in &step.ops {
                flat.push(match op {
                    Op::Func(f) => Err(f.clone()),
                    Op::Layer(i) => match &plan.slots[*i] {
                        Slot::Param(k, LayerClass::Linear { .. }) => Ok(*k),
                        Slot::Func(f) => Err(f.clone()),
                        _ => return None,
                    },
                });
            }
            current = step.output.as_deref()?;
        }
        if plan.spec.outputs[0] != current {
            return None;
        }
        let mut layers = Vec::new();
        let mut act: Option<bool> = None;
        for (j, item) in flat.iter().enumerate() {
            let want_layer = j % 2 == 0;
            match (item, want_layer) {
                (Ok(k), true) => layers.push(*k),
                (Err(Func::Relu), false) if act != Some(true) => act = Some(false),
                (Err(Func::Tanh), false) if act != Some(false) => act = Some(true),
                _ => return None,
            }
        }
        if flat.len().is_multiple_of(2) {
            return None; // ends in an activation
        }
        Some(Chain {
            layers,
            tanh: act == Some(true),
        })
    }
}

/// The batch's gradients (clipped per sample to `clip` when given, else their plain sum) and
/// its summed loss, for the rows `x` `[B, in]` (plain backend).
pub(crate) fn grads(
    net: &GraphNet,
    chain: &Chain,
    x: Tensor<2>,
    target: &Target,
    clip: Option<f64>,
) -> (Grads, f64) {
    let linear = |k: usize| match &net.params[k] {
        ParamLayer::Linear(l) => l,
        _ => unreachable!("a dense chain holds linear layers"),
    };
    let n = chain.layers.len();
    let mut inputs = Vec::with_capacity(n);
    let mut pre = Vec::with_capacity(n);
    let mut h = x;
    for (i, &k) in chain.layers.iter().enumerate() {
        let l = linear(k);
        inputs.push(h.clone());
        let mut z = h.matmul(l.weight.val().inner());
        if let Some(b) = &l.bias {
            z = z + b.val().inner().unsqueeze_dim(0);
        }
        h = if i + 1 < n {
            if chain.tanh {
                burn::tensor::activation::tanh(z.clone())
            } else {
                burn::tensor::activation::relu(z.clone())
            }
        } else {
            z.clone()
        };
        pre.push(z);
    }
    let (mut delta, loss_sum) = loss_and_gradient(h, target);
    let mut deltas = vec![delta.clone(); n];
    for l in (0..n).rev() {
        deltas[l] = delta.clone();
        if l == 0 {
            break;
        }
        let back = delta.matmul(linear(chain.layers[l]).weight.val().inner().transpose());
        let slope = if chain.tanh {
            let a = inputs[l].clone();
            a.clone().mul(a).neg().add_scalar(1.0)
        } else {
            pre[l - 1].clone().greater_elem(0.0).float()
        };
        delta = back.mul(slope);
    }
    let factors = clip.map(|c| {
        let mut total: Option<Tensor<2>> = None;
        for ((a, d), &k) in inputs.iter().zip(&deltas).zip(&chain.layers) {
            let an = a.clone().square().sum_dim(1);
            let an = if linear(k).bias.is_some() {
                an.add_scalar(1.0)
            } else {
                an
            };
            let t = d.clone().square().sum_dim(1).mul(an);
            total = Some(match total {
                Some(s) => s + t,
                None => t,
            });
        }
        let norms = total.expect("a chain has a layer").sqrt();
        norms.add_scalar(1e-6).recip().mul_scalar(c).clamp_max(1.0)
    });
    let mut out = Vec::with_capacity(2 * n);
    for ((a, d), &k) in inputs.into_iter().zip(deltas).zip(&chain.layers) {
        let cd = match &factors {
            Some(f) => d.mul(f.clone()),
            None => d,
        };
        let l = linear(k);
        out.push((l.weight.id, Val::R2(a.transpose().matmul(cd.clone()))));
        if let Some(b) = &l.bias {
            out.push((b.id, Val::R1(cd.sum_dim(0).squeeze_dim::<1>(0))));
        }
    }
    (out, loss_sum)
}

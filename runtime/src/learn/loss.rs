//! The losses, per sample: each sample's loss and its gradient with respect to the model's
//! outputs, as PyTorch defines them. Both the plain and the DP-SGD backward pass start from
//! here, so every loss can be clipped per sample.

use burn::tensor::{Tensor, TensorData};

/// The loss of the task, per sample.
#[derive(Debug, Clone)]
pub enum Target {
    /// Softmax cross-entropy over `classes` with class indices and label smoothing `ε`:
    /// `ℓᵢ = −Σₖ qᵢₖ log softmax(zᵢ)ₖ`, `qᵢ = (1 − ε) onehot(yᵢ) + ε / classes`.
    Classes {
        /// Class index per sample.
        labels: Vec<usize>,
        /// Number of classes (the output width).
        classes: usize,
        /// `ε` in [0, 1] (PyTorch's `label_smoothing`; 0 is plain cross-entropy).
        label_smoothing: f32,
    },
    /// A regression loss against one output.
    Values(Vec<f32>, RegressionLoss),
}

/// A regression loss of the residual `d = zᵢ − yᵢ`, as PyTorch defines it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegressionLoss {
    /// `d²` (MSELoss).
    Mse,
    /// `|d|` (L1Loss).
    L1,
    /// `½ d²` for `|d| < δ`, else `δ (|d| − ½ δ)` (HuberLoss).
    Huber(f32),
    /// `½ d² / β` for `|d| < β`, else `|d| − ½ β` (SmoothL1Loss; `β = 0` is L1).
    SmoothL1(f32),
}

/// The summed loss of outputs `out` `[B, k]` and its gradient with respect to them (each
/// row: that sample's loss's gradient).
pub fn loss_and_gradient(out: Tensor<2>, target: &Target) -> (Tensor<2>, f64) {
    let device = out.device();
    let b = out.dims()[0];
    match target {
        Target::Classes {
            labels,
            classes,
            label_smoothing,
        } => {
            let eps = *label_smoothing;
            let mut q = vec![eps / *classes as f32; b * classes];
            for (i, &y) in labels.iter().enumerate() {
                q[i * classes + y] += 1.0 - eps;
            }
            let q = Tensor::<2>::from_data(TensorData::new(q, [b, *classes]), &device);
            let logp = burn::tensor::activation::log_softmax(out, 1);
            let loss = -scalar(logp.clone().mul(q.clone()));
            (logp.exp() - q, loss)
        }
        Target::Values(y, kind) => {
            let y = Tensor::<2>::from_data(TensorData::new(y.clone(), [b, 1]), &device);
            let d = out - y;
            let abs = d.clone().abs();
            // The quadratic zone `|d| < w` of Huber and SmoothL1 (1 inside, 0 outside).
            let inside = |w: f32| abs.clone().lower_elem(w).float();
            match *kind {
                RegressionLoss::Mse => {
                    let loss = scalar(d.clone().powf_scalar(2.0));
                    (d.mul_scalar(2.0), loss)
                }
                RegressionLoss::L1 => (d.sign(), scalar(abs)),
                RegressionLoss::Huber(delta) => {
                    let m = inside(delta);
                    let outside = m.clone().neg().add_scalar(1.0);
                    let loss = m.clone().mul(d.clone().powf_scalar(2.0).mul_scalar(0.5))
                        + outside
                            .clone()
                            .mul(abs.clone().sub_scalar(0.5 * delta).mul_scalar(delta));
                    let grad = m.mul(d.clone()) + outside.mul(d.sign().mul_scalar(delta));
                    (grad, scalar(loss))
                }
                RegressionLoss::SmoothL1(beta) if beta > 0.0 => {
                    let m = inside(beta);
                    let outside = m.clone().neg().add_scalar(1.0);
                    let loss = m
                        .clone()
                        .mul(d.clone().powf_scalar(2.0).mul_scalar(0.5 / beta))
                        + outside.clone().mul(abs.clone().sub_scalar(0.5 * beta));
                    let grad = m.mul(d.clone().div_scalar(beta)) + outside.mul(d.sign());
                    (grad, scalar(loss))
                }
                RegressionLoss::SmoothL1(_) => (d.sign(), scalar(abs)),
            }
        }
    }
}

/// The sum of a tensor's elements (computed in f32, as the backend holds them).
fn scalar<const D: usize>(t: Tensor<D>) -> f64 {
    let v = t
        .sum()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    f64::from(v.first().copied().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::model::device;
    use crate::learn::testing::{close, vecf};

    #[test]
    fn each_loss_has_pytorchs_value_and_its_gradient_is_its_derivative() {
        let device = device().inner();
        let t2 = |v: Vec<f32>, k: usize| {
            let n = v.len() / k;
            Tensor::<2>::from_data(TensorData::new(v, [n, k]), &device)
        };
        // Values by PyTorch's definitions, computed by hand.
        let d = [0.5f32, -2.0, 0.0];
        let y = vec![1.0f32; 3];
        let z: Vec<f32> = d.iter().map(|d| d + 1.0).collect();
        for (kind, want) in [
            (RegressionLoss::Mse, 0.25 + 4.0),
            (RegressionLoss::L1, 0.5 + 2.0),
            (RegressionLoss::Huber(1.0), 0.125 + 1.5),
            (RegressionLoss::Huber(3.0), 0.125 + 2.0),
            (RegressionLoss::SmoothL1(2.0), 0.0625 + 1.0),
            (RegressionLoss::SmoothL1(0.0), 2.5),
        ] {
            let (_, l) = loss_and_gradient(t2(z.clone(), 1), &Target::Values(y.clone(), kind));
            assert!((l - want).abs() < 1e-6, "{kind:?}: {l} vs {want}");
        }
        // Cross-entropy with label smoothing 0.1 over 3 classes at equal logits: log 3.
        let ce = Target::Classes {
            labels: vec![0],
            classes: 3,
            label_smoothing: 0.1,
        };
        let (g, l) = loss_and_gradient(t2(vec![0.0; 3], 3), &ce);
        assert!((l - 3f64.ln()).abs() < 1e-6, "{l}");
        close(
            &vecf(g),
            &[
                1.0 / 3.0 - 0.9 - 0.1 / 3.0,
                1.0 / 3.0 - 0.1 / 3.0,
                1.0 / 3.0 - 0.1 / 3.0,
            ],
            "ce gradient",
        );
        // Every gradient is the derivative of its loss (central differences, away from kinks).
        let zs = vec![0.3f32, -1.7, 2.4, 0.9];
        let ys = vec![0.0f32, 0.1, -0.2, 0.5];
        let targets = [
            Target::Values(ys.clone(), RegressionLoss::Mse),
            Target::Values(ys.clone(), RegressionLoss::L1),
            Target::Values(ys.clone(), RegressionLoss::Huber(1.0)),
            Target::Values(ys, RegressionLoss::SmoothL1(0.5)),
        ];
        for target in &targets {
            let (g, _) = loss_and_gradient(t2(zs.clone(), 1), target);
            let g = vecf(g);
            for i in 0..zs.len() {
                let h = 1e-3f32;
                let at = |dz: f32| {
                    let mut z = zs.clone();
                    z[i] += dz;
                    loss_and_gradient(t2(z, 1), target).1
                };
                let num = (at(h) - at(-h)) / (2.0 * f64::from(h));
                assert!(
                    (num - f64::from(g[i])).abs() < 1e-2,
                    "{target:?} [{i}]: {num} vs {}",
                    g[i]
                );
            }
        }
        let logits = vec![0.2f32, -0.4, 1.1, 0.7, 0.0, -1.3];
        let ce = Target::Classes {
            labels: vec![2, 0],
            classes: 3,
            label_smoothing: 0.2,
        };
        let (g, _) = loss_and_gradient(t2(logits.clone(), 3), &ce);
        let g = vecf(g);
        for i in 0..logits.len() {
            let at = |dz: f32| {
                let mut z = logits.clone();
                z[i] += dz;
                loss_and_gradient(t2(z, 3), &ce).1
            };
            let num = (at(1e-3) - at(-1e-3)) / 2e-3;
            assert!(
                (num - f64::from(g[i])).abs() < 1e-2,
                "ce [{i}]: {num} vs {}",
                g[i]
            );
        }
    }
}

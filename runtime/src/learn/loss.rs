//! The losses, per sample: each sample's loss and its gradient with respect to the model's
//! outputs, as PyTorch defines them. Both the plain and the DP-SGD backward pass start from
//! here, so every loss can be clipped per sample.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};

use crate::pipeline::ExpressionLoss;
use crate::pipeline::loss::expr::{Component, Expr, Function, Op};

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
    /// Binary cross-entropy against labels 0/1 of one output: a probability (`logits` false,
    /// BCELoss) or a logit (BCEWithLogitsLoss).
    Binary {
        /// 0 or 1 per sample.
        labels: Vec<f32>,
        /// The output is a logit (else a probability).
        logits: bool,
    },
    /// Another target's per-sample losses and gradients, each sample's times its weight (a
    /// class weight `w_yᵢ`).
    Weighted {
        /// The target.
        inner: Box<Target>,
        /// One weight per sample.
        weights: Vec<f32>,
    },
    /// Negative log-likelihood of log-probability outputs (NLLLoss): `ℓᵢ = −zᵢ,yᵢ`.
    LogProbs {
        /// Class index per sample.
        labels: Vec<usize>,
        /// Number of classes (the output width).
        classes: usize,
    },
    /// A loss by expression: its loss components (`parts`, in the order written) computed per
    /// sample and combined per sample by the expression; the gradient by the chain rule.
    Composed {
        /// One target per loss component of `loss`.
        parts: Vec<Target>,
        /// The expression and its components.
        loss: Arc<ExpressionLoss>,
    },
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
    let (grad, losses) = per_sample(out, target);
    (grad, scalar(losses))
}

/// Each sample's loss `[B, 1]` and its gradient with respect to the outputs `[B, k]`.
fn per_sample(out: Tensor<2>, target: &Target) -> (Tensor<2>, Tensor<2>) {
    let device = out.device();
    let b = out.dims()[0];
    match target {
        Target::Composed { parts, loss } => composed(out, parts, loss),
        Target::Weighted { inner, weights } => {
            let (g, l) = per_sample(out, inner);
            let w = Tensor::<2>::from_data(TensorData::new(weights.clone(), [b, 1]), &device);
            (g * w.clone(), l * w)
        }
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
            let loss = logp.clone().mul(q.clone()).sum_dim(1).neg();
            (logp.exp() - q, loss)
        }
        Target::Binary { labels, logits } => {
            let y = Tensor::<2>::from_data(TensorData::new(labels.clone(), [b, 1]), &device);
            if *logits {
                // max(z, 0) − y z + ln(1 + e^−|z|); gradient σ(z) − y.
                let z = out;
                let loss = z.clone().clamp_min(0.0) - z.clone() * y.clone()
                    + z.clone().abs().neg().exp().log1p();
                (burn::tensor::activation::sigmoid(z) - y, loss)
            } else {
                // PyTorch clamps each log at −100 and divides the gradient by max(p(1−p), 1e-12).
                let p = out;
                let q = p.clone().neg().add_scalar(1.0);
                let loss = (y.clone() * p.clone().log().clamp_min(-100.0)
                    + y.clone().neg().add_scalar(1.0) * q.clone().log().clamp_min(-100.0))
                .neg();
                let grad = (p.clone() - y) / (p * q).clamp_min(1e-12);
                (grad, loss)
            }
        }
        Target::LogProbs { labels, classes } => {
            let mut onehot = vec![0f32; b * classes];
            for (i, &y) in labels.iter().enumerate() {
                onehot[i * classes + y] = 1.0;
            }
            let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, *classes]), &device);
            let loss = (out * onehot.clone()).sum_dim(1).neg();
            (onehot.neg(), loss)
        }
        Target::Values(y, kind) => {
            let y = Tensor::<2>::from_data(TensorData::new(y.clone(), [b, 1]), &device);
            let d = out - y;
            let abs = d.clone().abs();
            // The quadratic zone `|d| < w` of Huber and SmoothL1 (1 inside, 0 outside).
            let inside = |w: f32| abs.clone().lower_elem(w).float();
            match *kind {
                RegressionLoss::Mse => {
                    let loss = d.clone().powf_scalar(2.0);
                    (d.mul_scalar(2.0), loss)
                }
                RegressionLoss::L1 => (d.sign(), abs),
                RegressionLoss::Huber(delta) => {
                    let m = inside(delta);
                    let outside = m.clone().neg().add_scalar(1.0);
                    let loss = m.clone().mul(d.clone().powf_scalar(2.0).mul_scalar(0.5))
                        + outside
                            .clone()
                            .mul(abs.clone().sub_scalar(0.5 * delta).mul_scalar(delta));
                    let grad = m.mul(d.clone()) + outside.mul(d.sign().mul_scalar(delta));
                    (grad, loss)
                }
                RegressionLoss::SmoothL1(beta) if beta > 0.0 => {
                    let m = inside(beta);
                    let outside = m.clone().neg().add_scalar(1.0);
                    let loss = m
                        .clone()
                        .mul(d.clone().powf_scalar(2.0).mul_scalar(0.5 / beta))
                        + outside.clone().mul(abs.clone().sub_scalar(0.5 * beta));
                    let grad = m.mul(d.clone().div_scalar(beta)) + outside.mul(d.sign());
                    (grad, loss)
                }
                RegressionLoss::SmoothL1(_) => (d.sign(), abs),
            }
        }
    }
}

/// A loss by expression, per sample: each part's losses and gradients, then per sample the
/// expression with forward-mode derivatives with respect to the parts' losses.
fn composed(out: Tensor<2>, parts: &[Target], loss: &ExpressionLoss) -> (Tensor<2>, Tensor<2>) {
    let device = out.device();
    let b = out.dims()[0];
    let (grads, values): (Vec<Tensor<2>>, Vec<Vec<f32>>) = parts
        .iter()
        .map(|p| {
            let (g, l) = per_sample(out.clone(), p);
            let v = l
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            (g, v)
        })
        .unzip();
    let m = parts.len();
    let mut coef = vec![vec![0f32; b]; m];
    let mut total = vec![0f32; b];
    for i in 0..b {
        let base: Vec<f64> = values
            .iter()
            .map(|v| f64::from(v.get(i).copied().unwrap_or(0.0)))
            .collect();
        let d = evaluate(loss, &base);
        total[i] = d.v as f32;
        for (j, c) in coef.iter_mut().enumerate() {
            c[i] = d.d[j] as f32;
        }
    }
    let mut grad = out.zeros_like();
    for (g, c) in grads.into_iter().zip(coef) {
        grad = grad + g.mul(Tensor::<2>::from_data(TensorData::new(c, [b, 1]), &device));
    }
    (
        grad,
        Tensor::<2>::from_data(TensorData::new(total, [b, 1]), &device),
    )
}

/// A value and its derivatives with respect to the parts' losses.
#[derive(Debug, Clone)]
struct Dual {
    v: f64,
    d: Vec<f64>,
}

impl Dual {
    fn constant(v: f64, m: usize) -> Self {
        Self { v, d: vec![0.0; m] }
    }

    fn map(&self, v: f64, slope: f64) -> Self {
        Self {
            v,
            d: self.d.iter().map(|x| x * slope).collect(),
        }
    }

    fn zip(&self, o: &Self, v: f64, sa: f64, sb: f64) -> Self {
        Self {
            v,
            d: self
                .d
                .iter()
                .zip(&o.d)
                .map(|(a, b)| a * sa + b * sb)
                .collect(),
        }
    }
}

/// The expression at one sample whose parts' losses are `base`.
fn evaluate(loss: &ExpressionLoss, base: &[f64]) -> Dual {
    let m = base.len();
    let mut names: Vec<(&str, Dual)> = Vec::new();
    let mut j = 0;
    for (name, c) in &loss.components {
        let value = match c {
            Component::Loss(..) => {
                let mut d = Dual::constant(base.get(j).copied().unwrap_or(0.0), m);
                if let Some(x) = d.d.get_mut(j) {
                    *x = 1.0;
                }
                j += 1;
                d
            }
            Component::Function {
                function,
                input,
                negate,
            } => {
                let x = names
                    .iter()
                    .find(|n| n.0 == input)
                    .map(|n| n.1.clone())
                    .unwrap_or_else(|| Dual::constant(0.0, m));
                let x = if *negate { x.map(-x.v, -1.0) } else { x };
                match function {
                    Function::Exp => x.map(x.v.exp(), x.v.exp()),
                    Function::Log => x.map(x.v.ln(), 1.0 / x.v),
                    Function::Sqrt => x.map(x.v.sqrt(), 0.5 / x.v.sqrt()),
                }
            }
        };
        names.push((name, value));
    }
    let lookup = |n: &str| {
        names
            .iter()
            .find(|x| x.0 == n)
            .map(|x| x.1.clone())
            .or_else(|| loss.variables.get(n).map(|v| Dual::constant(*v, m)))
            .unwrap_or_else(|| Dual::constant(0.0, m))
    };
    eval_expr(&loss.expression, &lookup, m)
}

fn eval_expr(e: &Expr, lookup: &dyn Fn(&str) -> Dual, m: usize) -> Dual {
    match e {
        Expr::Num(x) => Dual::constant(*x, m),
        Expr::Name(n) => lookup(n),
        Expr::Neg(a) => {
            let a = eval_expr(a, lookup, m);
            a.map(-a.v, -1.0)
        }
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval_expr(a, lookup, m), eval_expr(b, lookup, m));
            match op {
                Op::Add => a.zip(&b, a.v + b.v, 1.0, 1.0),
                Op::Sub => a.zip(&b, a.v - b.v, 1.0, -1.0),
                Op::Mul => a.zip(&b, a.v * b.v, b.v, a.v),
                Op::Div => a.zip(&b, a.v / b.v, 1.0 / b.v, -a.v / (b.v * b.v)),
                Op::Pow => {
                    let v = a.v.powf(b.v);
                    // d(a^b) = b a^(b-1) da + a^b ln(a) db (the second term only when b varies).
                    let sa = if a.v == 0.0 && b.v >= 1.0 {
                        if b.v == 1.0 { 1.0 } else { 0.0 }
                    } else {
                        b.v * a.v.powf(b.v - 1.0)
                    };
                    let sb = if b.d.iter().all(|x| *x == 0.0) {
                        0.0
                    } else {
                        v * a.v.ln()
                    };
                    a.zip(&b, v, sa, sb)
                }
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
        // A class weight scales the sample's loss and gradient (PyTorch's `weight`).
        let weighted = Target::Weighted {
            inner: Box::new(Target::Classes {
                labels: vec![0],
                classes: 3,
                label_smoothing: 0.0,
            }),
            weights: vec![2.0],
        };
        let (g, l) = loss_and_gradient(t2(vec![0.0; 3], 3), &weighted);
        assert!((l - 2.0 * 3f64.ln()).abs() < 1e-6, "{l}");
        close(
            &vecf(g),
            &[2.0 * (1.0 / 3.0 - 1.0), 2.0 / 3.0, 2.0 / 3.0],
            "weighted ce gradient",
        );
        // BCELoss of probabilities, BCEWithLogitsLoss of logits, NLLLoss of log-probabilities,
        // by their definitions: −(y ln p + (1 − y) ln(1 − p)), softplus(z) − y z, −z_y.
        let p = [0.2f32, 0.9, 0.6, 0.5];
        let yb = vec![0.0f32, 1.0, 0.0, 1.0];
        let want: f64 = p
            .iter()
            .zip(&yb)
            .map(|(&p, &y)| {
                -(f64::from(y) * f64::from(p).ln() + f64::from(1.0 - y) * f64::from(1.0 - p).ln())
            })
            .sum();
        let bce = Target::Binary {
            labels: yb.clone(),
            logits: false,
        };
        let (_, l) = loss_and_gradient(t2(p.to_vec(), 1), &bce);
        assert!((l - want).abs() < 1e-5, "BCELoss {l} vs {want}");
        let logits: Vec<f32> = p.iter().map(|&p| (p / (1.0 - p)).ln()).collect();
        let bcel = Target::Binary {
            labels: yb,
            logits: true,
        };
        let (_, l) = loss_and_gradient(t2(logits, 1), &bcel);
        assert!((l - want).abs() < 1e-5, "BCEWithLogitsLoss {l} vs {want}");
        let nll = Target::LogProbs {
            labels: vec![2, 0],
            classes: 3,
        };
        let (g, l) = loss_and_gradient(t2(vec![-1.0, -2.0, -0.5, -0.1, -3.0, -2.5], 3), &nll);
        assert!((l - 0.6).abs() < 1e-6, "NLLLoss {l}");
        close(
            &vecf(g),
            &[0.0, 0.0, -1.0, -1.0, 0.0, 0.0],
            "NLLLoss gradient",
        );
        let targets = [
            Target::Values(ys.clone(), RegressionLoss::Mse),
            Target::Values(ys.clone(), RegressionLoss::L1),
            Target::Values(ys.clone(), RegressionLoss::Huber(1.0)),
            Target::Values(ys, RegressionLoss::SmoothL1(0.5)),
            Target::Binary {
                labels: vec![0.0, 1.0, 0.0, 1.0],
                logits: true,
            },
        ];
        let (g, _) = loss_and_gradient(t2(p.to_vec(), 1), &bce);
        let g = vecf(g);
        for i in 0..p.len() {
            let h = 1e-3f32;
            let at = |dp: f32| {
                let mut q = p.to_vec();
                q[i] += dp;
                loss_and_gradient(t2(q, 1), &bce).1
            };
            let num = (at(h) - at(-h)) / (2.0 * f64::from(h));
            assert!(
                (num - f64::from(g[i])).abs() < 2e-2,
                "BCELoss [{i}]: {num} vs {}",
                g[i]
            );
        }
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

    /// mnist's focal loss, as DEPA's mnist scenario writes it.
    fn focal() -> Arc<ExpressionLoss> {
        let c: crate::pipeline::LossConfig = serde_json::from_value(serde_json::json!({
            "expression": "alpha * (1 - pt)**gamma * ce_loss",
            "components": {
                "ce_loss": {"class": "nn.CrossEntropyLoss", "params": {"reduction": "none"}},
                "pt": {"class": "torch.exp", "params": {"input": "-$ce_loss"}}
            },
            "variables": {"alpha": 1, "gamma": 2},
            "reduction": "mean"
        }))
        .unwrap();
        c.expression.unwrap()
    }

    #[test]
    fn an_expression_loss_is_its_formula_per_sample_and_its_gradient_the_chain_rule() {
        let device = device().inner();
        let z = vec![0.3f32, -1.2, 2.0, 1.5, 0.1, -0.4];
        let labels = vec![2usize, 1];
        let target = Target::Composed {
            parts: vec![Target::Classes {
                labels: labels.clone(),
                classes: 3,
                label_smoothing: 0.0,
            }],
            loss: focal(),
        };
        let t = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [2, 3]), &device);
        let (g, l) = loss_and_gradient(t(z.clone()), &target);
        // By hand: ce = logsumexp(z) - z[y], pt = exp(-ce), focal = (1 - pt)^2 ce.
        let want: f64 = z
            .chunks(3)
            .zip(&labels)
            .map(|(r, &y)| {
                let lse = r.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
                let ce = lse - f64::from(r[y]);
                (1.0 - (-ce).exp()).powi(2) * ce
            })
            .sum();
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
        let g = vecf(g);
        for i in 0..z.len() {
            let at = |dz: f32| {
                let mut v = z.clone();
                v[i] += dz;
                loss_and_gradient(t(v), &target).1
            };
            let num = (at(1e-3) - at(-1e-3)) / 2e-3;
            assert!(
                (num - f64::from(g[i])).abs() < 1e-2,
                "[{i}]: {num} vs {}",
                g[i]
            );
        }
        // The focal loss is below plain cross-entropy (the factor (1 - pt)^2 < 1).
        let (_, ce) = loss_and_gradient(
            t(z),
            &Target::Classes {
                labels,
                classes: 3,
                label_smoothing: 0.0,
            },
        );
        assert!(l < ce, "{l} vs {ce}");
    }
}

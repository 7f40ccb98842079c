//! Full-batch solvers for `Train_ML`'s linear models without DP, as scikit-learn solves them:
//! L-BFGS (argmin's, More–Thuente line search, 10 correction pairs) on the whole training set
//! in f64, instead of SGD epochs.
//!
//! - `LogisticRegression` (scikit-learn's `LogisticRegression(solver="lbfgs")`, L2 penalty on the
//!   weights, not the intercept): minimises `(1/n) Σᵢ ℓᵢ + ‖W‖² / (2·C·n)`, the same optimum as
//!   scikit-learn's `C Σᵢ ℓᵢ + ½‖W‖²`. Two classes: the binary loss on one weight vector
//!   `ℓ = log(1 + e^z) − y z` (scikit-learn's coefficients for two classes); more: the
//!   multinomial loss `ℓ = logsumexp(z) − z_y`, one row per class.
//! - `LinearRegression` (scikit-learn's `LinearRegression`, ordinary least squares, no penalty):
//!   `(1/(2n)) Σᵢ (zᵢ − yᵢ)²`.
//!
//! Stops when the gradient's norm is at most `tol`, when an iteration changes the objective by
//! less than 1e-15, or after `max_iter` iterations.

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

use super::TrainError;

/// The solver's parameters (scikit-learn's names).
#[derive(Debug, Clone, Copy)]
pub struct SolverParams {
    /// Inverse of the L2 penalty's strength (logistic regression; > 0).
    pub c: f64,
    /// Most L-BFGS iterations.
    pub max_iter: u64,
    /// Gradient norm at which to stop.
    pub tol: f64,
}

/// A fitted linear model: `weights` `[outputs, d]` row-major and `bias` `[outputs]`, and what
/// the solver did.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// `[outputs, d]`, row-major.
    pub weights: Vec<f64>,
    /// `[outputs]`.
    pub bias: Vec<f64>,
    /// The objective at the solution (the mean loss plus the penalty).
    pub objective: f64,
    /// L-BFGS iterations run.
    pub iterations: u64,
}

#[derive(Clone, Copy)]
enum Kind {
    Binary,
    Multinomial(usize),
    LeastSquares,
}

/// The problem argmin sees: the rows `x` `[n, d]` (scaled), the labels, the kind.
struct Problem<'a> {
    x: &'a [f32],
    y: &'a [f32],
    d: usize,
    kind: Kind,
    /// `1 / (C·n)`: the penalty's weight (0 for least squares).
    lambda: f64,
}

impl Problem<'_> {
    fn outputs(&self) -> usize {
        match self.kind {
            Kind::Binary | Kind::LeastSquares => 1,
            Kind::Multinomial(k) => k,
        }
    }

    /// The objective and its gradient (parameters: the weights `[k, d]`, then the bias `[k]`).
    fn eval(&self, p: &[f64], want_grad: bool) -> (f64, Vec<f64>) {
        let (d, k) = (self.d, self.outputs());
        let n = self.y.len();
        let (w, b) = p.split_at(k * d);
        let mut grad = if want_grad {
            vec![0.0; p.len()]
        } else {
            Vec::new()
        };
        let mut loss = 0.0;
        let mut z = vec![0.0f64; k];
        for (row, &y) in self.x.chunks_exact(d).zip(self.y) {
            for (j, zj) in z.iter_mut().enumerate() {
                let wj = &w[j * d..(j + 1) * d];
                *zj = b[j]
                    + wj.iter()
                        .zip(row)
                        .map(|(a, &x)| a * f64::from(x))
                        .sum::<f64>();
            }
            // dℓ/dz per output into `z` (reused).
            match self.kind {
                Kind::Binary => {
                    let (zi, yi) = (z[0], f64::from(y));
                    // log(1 + e^z) computed stably.
                    loss += zi.max(0.0) + (-zi.abs()).exp().ln_1p() - yi * zi;
                    z[0] = 1.0 / (1.0 + (-zi).exp()) - yi;
                }
                Kind::Multinomial(_) => {
                    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
                    let lse = m + s.ln();
                    let yi = y as usize;
                    loss += lse - z[yi];
                    for (j, zj) in z.iter_mut().enumerate() {
                        *zj = (*zj - lse).exp() - f64::from(u8::from(j == yi));
                    }
                }
                Kind::LeastSquares => {
                    let r = z[0] - f64::from(y);
                    loss += 0.5 * r * r;
                    z[0] = r;
                }
            }
            if want_grad {
                let (gw, gb) = grad.split_at_mut(k * d);
                for (j, &dz) in z.iter().enumerate() {
                    gb[j] += dz;
                    for (g, &x) in gw[j * d..(j + 1) * d].iter_mut().zip(row) {
                        *g += dz * f64::from(x);
                    }
                }
            }
        }
        let nf = n.max(1) as f64;
        let penalty: f64 = w.iter().map(|v| v * v).sum::<f64>() * self.lambda / 2.0;
        if want_grad {
            for g in grad.iter_mut() {
                *g /= nf;
            }
            for (g, wv) in grad.iter_mut().zip(w) {
                *g += self.lambda * wv;
            }
        }
        (loss / nf + penalty, grad)
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<Self::Output, argmin::core::Error> {
        Ok(self.eval(p, false).0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Self::Gradient, argmin::core::Error> {
        Ok(self.eval(p, true).1)
    }
}

fn solve(problem: Problem<'_>, prm: &SolverParams) -> Result<Fitted, TrainError> {
    let (d, k) = (problem.d, problem.outputs());
    let fail = |e: argmin::core::Error| TrainError::Data(format!("the L-BFGS solver: {e}"));
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(prm.tol)
        // Also stop once a step no longer changes the objective (f64 noise below `tol`).
        .and_then(|s| s.with_tolerance_cost(1e-15))
        .map_err(fail)?;
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(vec![0.0; k * d + k]).max_iters(prm.max_iter))
        .run()
        .map_err(fail)?;
    let state = res.state();
    let p = state
        .get_best_param()
        .cloned()
        .ok_or_else(|| TrainError::Data("the L-BFGS solver gave no solution".into()))?;
    let (w, b) = p.split_at(k * d);
    Ok(Fitted {
        weights: w.to_vec(),
        bias: b.to_vec(),
        objective: state.get_best_cost(),
        iterations: state.get_iter(),
    })
}

/// scikit-learn's `LogisticRegression(C, max_iter, tol)` on rows `x` `[n, d]` (scaled) with
/// class indices `y` of `classes` classes: two classes give one weight row (the second class's
/// logit), more give one row per class.
///
/// # Errors
/// [`TrainError::Data`] when the solver fails (a non-finite objective).
pub fn logistic(
    x: &[f32],
    y: &[f32],
    d: usize,
    classes: usize,
    prm: &SolverParams,
) -> Result<Fitted, TrainError> {
    let kind = if classes == 2 {
        Kind::Binary
    } else {
        Kind::Multinomial(classes)
    };
    let lambda = 1.0 / (prm.c * y.len().max(1) as f64);
    solve(
        Problem {
            x,
            y,
            d,
            kind,
            lambda,
        },
        prm,
    )
}

/// scikit-learn's `LinearRegression` (ordinary least squares) on rows `x` `[n, d]`.
///
/// # Errors
/// [`TrainError::Data`] when the solver fails.
pub fn least_squares(
    x: &[f32],
    y: &[f32],
    d: usize,
    prm: &SolverParams,
) -> Result<Fitted, TrainError> {
    solve(
        Problem {
            x,
            y,
            d,
            kind: Kind::LeastSquares,
            lambda: 0.0,
        },
        prm,
    )
}

/// Fits `net` (ccr's `LogisticRegression` or `LinearRegression` graph: one linear layer
/// `layers.0` of `outputs` outputs) on the scaled training rows `x` `[n, d]` with labels `y`,
/// with `model_config`'s `C`, `max_iter` and `tol`; returns it and the objective. Two classes:
/// scikit-learn's binary weight row is the second output's, the first output is 0 (the same
/// softmax probabilities).
///
/// # Errors
/// [`TrainError::Data`] when the solver fails; [`TrainError::Backend`] when the weights do not
/// fit the graph.
pub fn train_linear(
    net: crate::learn::Net,
    cfg: &crate::pipeline::TrainConfig,
    x: &[f32],
    y: &[f32],
    d: usize,
    outputs: usize,
    device: &burn::tensor::Device,
) -> Result<(crate::learn::Net, f64), TrainError> {
    let mc = &cfg.model_config;
    let prm = SolverParams {
        c: mc.c.unwrap_or(1.0),
        max_iter: mc.max_iter.unwrap_or(100),
        tol: mc.tol.unwrap_or(1e-4),
    };
    let fitted = match cfg.task_type {
        crate::pipeline::TaskType::Classification => logistic(x, y, d, outputs, &prm)?,
        crate::pipeline::TaskType::Regression => least_squares(x, y, d, &prm)?,
    };
    tracing::info!(
        iterations = fitted.iterations,
        objective = fitted.objective,
        rows = y.len(),
        "solved by L-BFGS (scikit-learn's lbfgs); optimizer, total_epochs and batch_size are not used"
    );
    let (w, b): (Vec<f32>, Vec<f32>) = if fitted.bias.len() < outputs {
        // Binary: [0; w] and [0; b].
        let mut w = vec![0f32; d];
        w.extend(fitted.weights.iter().map(|&v| v as f32));
        (w, vec![0.0, fitted.bias[0] as f32])
    } else {
        (
            fitted.weights.iter().map(|&v| v as f32).collect(),
            fitted.bias.iter().map(|&v| v as f32).collect(),
        )
    };
    let get = |name: &str| match name {
        "layers.0.weight" => Some((vec![outputs, d], w.clone())),
        "layers.0.bias" => Some((vec![outputs], b.clone())),
        _ => None,
    };
    let net = net
        .load_state_dict(&get, device)
        .map_err(|e| TrainError::Backend(format!("the solved weights: {e}")))?;
    Ok((net, fitted.objective))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gradient is the objective's derivative (central differences), for each kind.
    #[test]
    fn the_gradient_is_the_objectives_derivative() {
        let x: Vec<f32> = (0..40).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let (d, n) = (4, 10);
        for (kind, y) in [
            (
                Kind::Binary,
                (0..n).map(|i| (i % 2) as f32).collect::<Vec<_>>(),
            ),
            (
                Kind::Multinomial(3),
                (0..n).map(|i| (i % 3) as f32).collect(),
            ),
            (Kind::LeastSquares, (0..n).map(|i| i as f32 * 0.3).collect()),
        ] {
            let pr = Problem {
                x: &x,
                y: &y,
                d,
                kind,
                lambda: 0.05,
            };
            let m = pr.outputs() * (d + 1);
            let p: Vec<f64> = (0..m).map(|i| (i as f64 * 0.37).sin() * 0.5).collect();
            let (_, g) = pr.eval(&p, true);
            for i in 0..m {
                let (mut a, mut b) = (p.clone(), p.clone());
                a[i] += 1e-6;
                b[i] -= 1e-6;
                let num = (pr.eval(&a, false).0 - pr.eval(&b, false).0) / 2e-6;
                assert!((num - g[i]).abs() < 1e-6, "param {i}: {num} vs {}", g[i]);
            }
        }
    }
}

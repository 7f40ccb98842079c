//! The DP-SGD plan of a run: the sampling rate, the noise multiplier and the number of steps the
//! budget allows, from the pipeline's `privacy_params`, the contract and the accountant; and
//! what a DP run spent.

use serde::Serialize;

use super::accountant;
use crate::learn::TrainError;
use crate::pipeline::TrainConfig;

/// The DP-SGD parameters of a run (from the pipeline's `privacy_params`, the contract and the
/// accountant; see [`plan_dp`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpPlan {
    /// Clipping norm `C` of each per-sample gradient.
    pub max_grad_norm: f64,
    /// Noise multiplier `σ`: the noise's standard deviation is `σ C`.
    pub noise_multiplier: f64,
    /// Poisson sampling rate `q = batch_size / training rows`.
    pub sampling_rate: f64,
    /// Steps per epoch (`round(1 / q)`).
    pub steps_per_epoch: u64,
    /// The most steps the budget allows (≤ epochs × steps per epoch).
    pub max_steps: u64,
    /// The run's epsilon budget (the pipeline's target epsilon).
    pub target_epsilon: f64,
    /// Delta.
    pub delta: f64,
}

impl DpPlan {
    /// Logs the plan (one line, `what` naming the algorithm: `DP-SGD plan`, `DP-LoRA plan`).
    pub fn log(&self, what: &str) {
        tracing::info!(
            noise_multiplier = self.noise_multiplier,
            sampling_rate = self.sampling_rate,
            max_grad_norm = self.max_grad_norm,
            steps = self.max_steps,
            target_epsilon = self.target_epsilon,
            delta = self.delta,
            "{what}"
        );
    }
}

/// What a DP run spent.
#[derive(Debug, Clone, Serialize)]
pub struct DpSpent {
    /// Epsilon spent (RDP accountant).
    pub epsilon: f64,
    /// The delta it is spent at.
    pub delta: f64,
    /// The RDP order that gives it.
    pub order: f64,
    /// Steps taken.
    pub steps: u64,
    /// The plan.
    pub plan: DpPlan,
}

/// The DP-SGD plan for `n_train` training rows: the sampling rate is `batch_size / n_train`,
/// `round(1/q)` steps per epoch; the noise multiplier is the given one (`privacy_params
/// .noise_multiplier` or the contract's, the larger when both are given), or else the smallest
/// that keeps every planned step within the target epsilon ([`accountant::noise_multiplier`]);
/// `max_steps` is where the target epsilon is reached.
///
/// # Errors
/// [`TrainError::Data`] naming the parameter when the accountant refuses it (for instance a
/// target epsilon no noise multiplier reaches).
pub fn plan_dp(
    cfg: &TrainConfig,
    n_train: usize,
    contract_noise: Option<f64>,
) -> Result<DpPlan, TrainError> {
    let p = cfg.privacy_params.as_ref();
    let num = |k: &str| {
        p.and_then(|p| p.get(k)).and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    let bad = |e: accountant::DpError| TrainError::Data(format!("privacy_params: {e}"));
    let target = num("epsilon").unwrap_or(f64::NAN);
    let delta = num("delta").unwrap_or(f64::NAN);
    let max_grad_norm = num("max_grad_norm").unwrap_or(f64::NAN);
    let q = (cfg.batch_size as f64 / n_train.max(1) as f64).min(1.0);
    let steps_per_epoch = ((1.0 / q).round() as u64).max(1);
    let planned = steps_per_epoch * cfg.total_epochs as u64;
    let given = match (num("noise_multiplier"), contract_noise) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let sigma = match given {
        Some(s) => s,
        None => {
            accountant::noise_multiplier(target, q, planned, delta)
                .map_err(bad)?
                .0
        }
    };
    let acc = accountant::Accountant::new(q, sigma).map_err(bad)?;
    let max_steps = acc.max_steps(target, delta, planned).map_err(bad)?;
    if max_steps == 0 {
        return Err(TrainError::Data(format!(
            "privacy_params: one step at noise multiplier {sigma} already spends more than epsilon {target}"
        )));
    }
    Ok(DpPlan {
        max_grad_norm,
        noise_multiplier: sigma,
        sampling_rate: q,
        steps_per_epoch,
        max_steps,
        target_epsilon: target,
        delta,
    })
}

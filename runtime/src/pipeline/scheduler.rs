//! `scheduler`: PyTorch's learning-rate schedulers as DEPA's train config names them, with
//! their parameters (PyTorch's names and defaults); `learn::schedule` computes the rates.

use serde::{Deserialize, Serialize};

/// A learning-rate scheduler of PyTorch's `torch.optim.lr_scheduler` with its parameters
/// (PyTorch's names and defaults; only single numbers, not per-group lists). The learning rate
/// of optimizer step `t` (from 0) is the scheduler's value after `t` calls of `step()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", content = "params", deny_unknown_fields)]
pub enum Scheduler {
    /// `lr · gamma^⌊t / step_size⌋`.
    StepLR(StepLr),
    /// `lr · gamma^(milestones ≤ t)`.
    MultiStepLR(MultiStepLr),
    /// `lr · gamma^t`.
    ExponentialLR(ExponentialLr),
    /// `eta_min + (lr - eta_min)(1 + cos(π t / T_max)) / 2`.
    CosineAnnealingLR(CosineAnnealingLr),
    /// Triangular cycles between `base_lr` and `max_lr` (Smith 2017).
    CyclicLR(CyclicLr),
    /// One cycle up to `max_lr` and down (Smith and Topin 2017).
    OneCycleLR(OneCycleLr),
    /// The rate times `factor` when the mean validation loss has not improved for `patience`
    /// epochs: stepped once per epoch on that loss (PyTorch's `step(val_loss)`), so it needs a
    /// validation split, and it is refused under DP (it would steer training by held-out rows
    /// of the private datasets outside the accountant).
    ReduceLROnPlateau(ReduceLrOnPlateau),
}

/// `ReduceLROnPlateau` parameters (PyTorch's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReduceLrOnPlateau {
    /// `min` (default: a lower loss is better) or `max`.
    #[serde(default)]
    pub mode: PlateauMode,
    /// The rate's factor on a plateau (default 0.1; must be < 1).
    #[serde(default = "gamma_tenth")]
    pub factor: f64,
    /// Epochs without improvement tolerated before the rate drops (default 10).
    #[serde(default = "default_patience")]
    pub patience: u64,
    /// The least change that counts as an improvement (default 1e-4), relative or absolute per
    /// `threshold_mode`.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// `rel` (default: better than `best · (1 ∓ threshold)`) or `abs` (`best ∓ threshold`).
    #[serde(default)]
    pub threshold_mode: ThresholdMode,
    /// Epochs after a drop during which no bad epoch counts (default 0).
    #[serde(default)]
    pub cooldown: u64,
    /// The rate never drops below this (default 0).
    #[serde(default)]
    pub min_lr: f64,
    /// A drop smaller than this is skipped (default 1e-8).
    #[serde(default = "default_eps")]
    pub eps: f64,
}

/// `ReduceLROnPlateau`'s `mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Lower is better.
    #[default]
    Min,
    /// Higher is better.
    Max,
}

/// `ReduceLROnPlateau`'s `threshold_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// Relative to the best value.
    #[default]
    Rel,
    /// Absolute.
    Abs,
}

/// `StepLR` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepLr {
    /// Steps between decays (> 0).
    pub step_size: u64,
    /// Decay factor (default 0.1).
    #[serde(default = "gamma_tenth")]
    pub gamma: f64,
}

/// `MultiStepLR` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStepLr {
    /// Steps at which the rate decays.
    pub milestones: Vec<u64>,
    /// Decay factor (default 0.1).
    #[serde(default = "gamma_tenth")]
    pub gamma: f64,
}

/// `ExponentialLR` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialLr {
    /// Decay factor per step.
    pub gamma: f64,
}

/// `CosineAnnealingLR` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineAnnealingLr {
    /// Steps of a half period (> 0).
    #[serde(rename = "T_max")]
    pub t_max: u64,
    /// The lowest rate (default 0).
    #[serde(default)]
    pub eta_min: f64,
}

/// `CyclicLR` parameters. The momentum cycling PyTorch does by default (`cycle_momentum`) is
/// not available: it must be given as `false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CyclicLr {
    /// The lower bound (the optimizer's `lr` is replaced by it, as in PyTorch).
    pub base_lr: f64,
    /// The upper bound.
    pub max_lr: f64,
    /// Steps of the rising half (default 2000).
    #[serde(default = "default_step_size_up")]
    pub step_size_up: u64,
    /// Steps of the falling half (default: `step_size_up`).
    #[serde(default)]
    pub step_size_down: Option<u64>,
    /// `triangular` (default), `triangular2` (amplitude halved each cycle) or `exp_range`
    /// (amplitude times `gamma^t`).
    #[serde(default)]
    pub mode: CyclicMode,
    /// `exp_range`'s factor (default 1).
    #[serde(default = "gamma_one")]
    pub gamma: f64,
    /// Must be `false` (see the type).
    #[serde(default = "yes")]
    pub cycle_momentum: bool,
}

/// `CyclicLR`'s `mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Constant amplitude.
    #[default]
    Triangular,
    /// Amplitude halved each cycle.
    Triangular2,
    /// Amplitude times `gamma^t`.
    ExpRange,
}

/// `OneCycleLR` parameters. As for `CyclicLR`, `cycle_momentum` must be given as `false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCycleLr {
    /// The peak rate.
    pub max_lr: f64,
    /// Steps of the cycle; or `epochs` × `steps_per_epoch`.
    #[serde(default)]
    pub total_steps: Option<u64>,
    /// With `steps_per_epoch`, instead of `total_steps`.
    #[serde(default)]
    pub epochs: Option<u64>,
    /// With `epochs`, instead of `total_steps`.
    #[serde(default)]
    pub steps_per_epoch: Option<u64>,
    /// Share of the cycle spent rising (default 0.3).
    #[serde(default = "default_pct_start")]
    pub pct_start: f64,
    /// `cos` (default) or `linear`.
    #[serde(default)]
    pub anneal_strategy: Anneal,
    /// The first rate is `max_lr / div_factor` (default 25).
    #[serde(default = "default_div_factor")]
    pub div_factor: f64,
    /// The last rate is the first divided by this (default 1e4).
    #[serde(default = "default_final_div_factor")]
    pub final_div_factor: f64,
    /// Rise, fall back to the first rate, then anneal to the last (default false).
    #[serde(default)]
    pub three_phase: bool,
    /// Must be `false`.
    #[serde(default = "yes")]
    pub cycle_momentum: bool,
}

impl OneCycleLr {
    /// `total_steps`, or `epochs` × `steps_per_epoch`.
    pub fn steps(&self) -> Option<u64> {
        self.total_steps
            .or_else(|| Some(self.epochs? * self.steps_per_epoch?))
    }
}

/// `OneCycleLR`'s `anneal_strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anneal {
    /// Cosine.
    #[default]
    Cos,
    /// Linear.
    Linear,
}

fn gamma_tenth() -> f64 {
    0.1
}
fn default_patience() -> u64 {
    10
}
fn default_threshold() -> f64 {
    1e-4
}
fn default_eps() -> f64 {
    1e-8
}
fn gamma_one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_step_size_up() -> u64 {
    2000
}
fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}

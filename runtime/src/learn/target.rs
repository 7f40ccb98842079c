//! The loss a training config names (`loss_config`, else by task: cross-entropy or MSE) and the
//! [`Target`]s it makes from labels: what the training loop, the validation loss and the
//! comparison with PyTorch's definitions (runtime/tests/torch_definitions.rs) share.

use std::sync::Arc;

use super::loss::{RegressionLoss, Target};
use crate::pipeline::loss::expr::Component;
use crate::pipeline::{ExpressionLoss, LossClass, LossParams, Reduction, TaskType, TrainConfig};

/// A training config's loss: its class and parameters, or an expression over components.
#[derive(Debug, Clone)]
pub struct LossSpec {
    task: TaskType,
    /// The model's output width (classes, or 1 for a binary or regression loss).
    out_dim: usize,
    class: LossClass,
    params: LossParams,
    expression: Option<Arc<ExpressionLoss>>,
}

impl LossSpec {
    /// The loss of `cfg` for a model of `out_dim` outputs.
    pub fn new(cfg: &TrainConfig, out_dim: usize) -> Self {
        let (class, params) = match &cfg.loss_config {
            Some(l) => (l.class, l.params.clone()),
            None => (
                match cfg.task_type {
                    TaskType::Classification => LossClass::CrossEntropyLoss,
                    TaskType::Regression => LossClass::MseLoss,
                },
                LossParams::default(),
            ),
        };
        Self {
            task: cfg.task_type,
            out_dim,
            class,
            params,
            expression: cfg.loss_config.as_ref().and_then(|l| l.expression.clone()),
        }
    }

    /// Whether the batch loss is the mean (else the sum) of the per-sample losses.
    pub fn mean(&self) -> bool {
        self.params.reduction == Reduction::Mean
    }

    /// The targets of samples with labels `labels` (class indices as numbers, 0/1 for a
    /// binary loss, values for regression).
    pub fn target(&self, labels: &[f32]) -> Target {
        match &self.expression {
            Some(e) => Target::Composed {
                parts: e
                    .components
                    .iter()
                    .filter_map(|(_, c)| match c {
                        Component::Loss(class, params) => Some(self.base(labels, *class, params)),
                        Component::Function { .. } => None,
                    })
                    .collect(),
                loss: e.clone(),
            },
            None => {
                let t = self.base(labels, self.class, &self.params);
                match self.class_weights(labels) {
                    Some(weights) => Target::Weighted {
                        inner: Box::new(t),
                        weights,
                    },
                    None => t,
                }
            }
        }
    }

    /// Each sample's class weight `w_y` (`loss_config.params.weight`), when there are weights.
    fn class_weights(&self, labels: &[f32]) -> Option<Vec<f32>> {
        let w = self.params.weight.as_ref()?;
        Some(
            labels
                .iter()
                .map(|&y| w.get(y as usize).copied().unwrap_or(0.0) as f32)
                .collect(),
        )
    }

    /// What a mean loss divides the samples' summed loss by: their number, or with class
    /// weights the weights' sum (PyTorch's weighted mean).
    pub fn mean_divisor(&self, labels: &[f32]) -> f64 {
        match self.class_weights(labels) {
            Some(w) => w
                .iter()
                .map(|&x| f64::from(x))
                .sum::<f64>()
                .max(f64::MIN_POSITIVE),
            None => labels.len() as f64,
        }
    }

    /// One loss class's targets.
    fn base(&self, labels: &[f32], class: LossClass, params: &LossParams) -> Target {
        match self.task {
            TaskType::Classification => match class {
                LossClass::BceLoss | LossClass::BceWithLogitsLoss => Target::Binary {
                    labels: labels.to_vec(),
                    logits: class == LossClass::BceWithLogitsLoss,
                },
                LossClass::NllLoss => Target::LogProbs {
                    labels: labels.iter().map(|&y| y as usize).collect(),
                    classes: self.out_dim,
                },
                _ => Target::Classes {
                    labels: labels.iter().map(|&y| y as usize).collect(),
                    classes: self.out_dim,
                    label_smoothing: params.label_smoothing.unwrap_or(0.0) as f32,
                },
            },
            TaskType::Regression => {
                let kind = match class {
                    LossClass::L1Loss => RegressionLoss::L1,
                    LossClass::HuberLoss => {
                        RegressionLoss::Huber(params.delta.unwrap_or(1.0) as f32)
                    }
                    LossClass::SmoothL1Loss => {
                        RegressionLoss::SmoothL1(params.beta.unwrap_or(1.0) as f32)
                    }
                    _ => RegressionLoss::Mse,
                };
                Target::Values(labels.to_vec(), kind)
            }
        }
    }
}

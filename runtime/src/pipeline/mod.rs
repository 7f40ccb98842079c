//! The pipeline config (`pipeline_config.json`), in DEPA-Training's shape.
//!
//! ```json
//! {"pipeline": [ {"name": "SparkJoin" | "DirectoryJoin", "config": {...}},
//!                {"name": "Train_DL" | "Train_ML", "config": {...}} ]}
//! ```
//!
//! Every field ccr reads is documented on the structs below; unknown fields are rejected with
//! their JSON path (for instance `pipeline[1].config.optimizer.params.lrr`). Fields DEPA writes
//! that ccr does not need (`paths`, `joined_dataset.joined_dataset`, `model_output_folder`,
//! `joined_result_columns`, `data_type`, `missing_strategy`) are accepted and ignored: ccr keeps
//! the joined dataset in memory and writes its output where `--out` says.

//!
//! [`config`] holds the fields as serde reads them, each value typed (enums for the task, the
//! model, the loss, the metrics, the scaler, the optimizer, the formats); [`Pipeline::from_value`]
//! parses them once and checks what serde cannot (one join then one train step, the model
//! against the task, XGBoost's and the CNN's fields, DP parameters), naming the JSON path.

mod check;
pub mod config;
pub mod loss;
pub mod scheduler;

pub use config::*;
pub use loss::expr::ExpressionLoss;
pub use loss::*;
pub use scheduler::*;

use serde_json::Value;

/// The pipeline config's JSON Schema (draft 2020-12), published as
/// `runtime/schema/pipeline_config.schema.json`; validate with `ccr_policy::schema::errors`.
pub const SCHEMA: &str = include_str!("../../schema/pipeline_config.schema.json");

/// The fields of `privacy_params` (DP-SGD, read with `is_private`): `epsilon` (the run's
/// budget: training stops when it is spent), `delta`, `max_grad_norm` (per-sample clipping
/// norm), `noise_multiplier` (optional: without it the accountant picks the smallest that
/// fits the budget).
pub const PRIVACY_PARAMS: &[&str] = &["epsilon", "delta", "max_grad_norm", "noise_multiplier"];

/// Errors of the pipeline config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The JSON does not parse or has an unknown or mistyped field or value.
    #[error("pipeline config: at `{path}`: {reason}")]
    Json {
        /// JSON path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A field holds a value ccr cannot run.
    #[error("pipeline config: `{path}`: {reason}")]
    Field {
        /// JSON path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The training framework of the train step (DEPA's step names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// `Train_DL`: neural networks.
    TrainDl,
    /// `Train_ML`: classical models.
    TrainMl,
    /// `Train_XGB`: gradient-boosted trees.
    TrainXgb,
}

impl Framework {
    /// DEPA's step name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrainDl => "Train_DL",
            Self::TrainMl => "Train_ML",
            Self::TrainXgb => "Train_XGB",
        }
    }
}

/// The parsed pipeline: one join, one train step.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The join step.
    pub join: Join,
    /// The training config.
    pub train: TrainConfig,
    /// Which train step.
    pub framework: Framework,
}

/// The join kind with its config.
#[derive(Debug, Clone)]
pub enum Join {
    /// Keyed join (SQL).
    Keyed(JoinConfig),
    /// Union.
    Union(JoinConfig),
}

impl Join {
    /// The config.
    pub fn config(&self) -> &JoinConfig {
        match self {
            Self::Keyed(c) | Self::Union(c) => c,
        }
    }
}

impl Pipeline {
    /// Parses and checks a pipeline config.
    ///
    /// # Errors
    /// [`PipelineError`] naming the field's path.
    pub fn from_value(v: &Value) -> Result<Self, PipelineError> {
        let cfg: PipelineConfig =
            serde_path_to_error::deserialize(v.clone()).map_err(|e| PipelineError::Json {
                path: e.path().to_string(),
                reason: e.inner().to_string(),
            })?;
        if cfg.pipeline.len() != 2 {
            return Err(check::field(
                "pipeline",
                "expected two steps: a join, then a train step",
            ));
        }
        let mut it = cfg.pipeline.into_iter();
        let join = check::join(it.next())?;
        let (train, framework) = match it.next() {
            Some(Step::TrainDl(c)) => (c, Framework::TrainDl),
            Some(Step::TrainMl(c)) => (c, Framework::TrainMl),
            Some(Step::TrainXgb(c)) => (c, Framework::TrainXgb),
            _ => {
                return Err(check::field(
                    "pipeline[1].name",
                    "the second step must be Train_DL, Train_ML or Train_XGB",
                ));
            }
        };
        check::train(&train, framework)?;
        Ok(Self {
            join,
            train,
            framework,
        })
    }
}

/// The (epsilon, delta) a private training step plans to spend on each dataset: its
/// `privacy_params` `epsilon` and `delta` (the targets the accountant keeps to); `None` without
/// DP.
pub fn planned_privacy(train: &TrainConfig) -> Option<(f64, f64)> {
    if !train.is_private {
        return None;
    }
    let num = |k: &str| privacy_param(train, k);
    num("epsilon").zip(num("delta"))
}

/// A number of `privacy_params` (DEPA may write it as a string).
pub fn privacy_param(train: &TrainConfig, key: &str) -> Option<f64> {
    train.privacy_params.as_ref()?.get(key).and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    })
}

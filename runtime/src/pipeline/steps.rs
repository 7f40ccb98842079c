//! The config's top level: the list of steps, each tagged by its `name` (DEPA's step names).

use serde::{Deserialize, Serialize};

use super::config::{JoinConfig, TrainConfig};
use super::finetune::FinetuneConfig;

/// The whole config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The steps: one join step, then one train step.
    pub pipeline: Vec<Step>,
}

/// A step, tagged by `name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "name", content = "config", deny_unknown_fields)]
pub enum Step {
    /// Keyed join through SQL (DEPA's Spark join; ccr runs the query on DataFusion, in memory).
    SparkJoin(JoinConfig),
    /// Union of like-shaped tables (same columns, in any order).
    DirectoryJoin(JoinConfig),
    /// Neural network training with Burn.
    #[serde(rename = "Train_DL")]
    TrainDl(TrainConfig),
    /// Classical models (logistic/linear regression) with Burn.
    #[serde(rename = "Train_ML")]
    TrainMl(TrainConfig),
    /// Gradient-boosted trees (XGBoost's `hist` algorithm, `learn::xgb`); `model_config.name`
    /// `XGBoost` with the XGBoost fields of [`super::config::ModelConfig`]; with `is_private`, DP-TR Newton
    /// (`learn::xgb_dp`).
    #[serde(rename = "Train_XGB")]
    TrainXgb(TrainConfig),
    /// A causal language model fine-tuned (LoRA, DP-LoRA or full) on the union of text
    /// datasets ([`super::finetune`]).
    #[serde(rename = "LLM_Finetune")]
    LlmFinetune(Box<FinetuneConfig>),
}

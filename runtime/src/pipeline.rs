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

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The steps: one join step, then one train step.
    pub pipeline: Vec<Step>,
}

/// The pipeline config's JSON Schema (draft 2020-12), published as
/// `runtime/schema/pipeline_config.schema.json`; validate with `ccr_policy::schema::errors`.
pub const SCHEMA: &str = include_str!("../schema/pipeline_config.schema.json");

/// A step, tagged by `name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "name", content = "config", deny_unknown_fields)]
pub enum Step {
    /// Keyed join through SQL (DEPA's Spark join; ccr runs the query in an in-memory SQLite).
    SparkJoin(JoinConfig),
    /// Union of like-shaped tables (same columns, in any order).
    DirectoryJoin(JoinConfig),
    /// Neural network training with Burn.
    #[serde(rename = "Train_DL")]
    TrainDl(TrainConfig),
    /// Classical models (logistic/linear regression) with Burn.
    #[serde(rename = "Train_ML")]
    TrainMl(TrainConfig),
    /// Gradient-boosted trees (`forust-ml`, XGBoost's algorithm); `model_config.name`
    /// `XGBoost` with the XGBoost fields of [`ModelConfig`]. No DP.
    #[serde(rename = "Train_XGB")]
    TrainXgb(TrainConfig),
}

/// A join step's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The input datasets.
    pub datasets: Vec<DatasetInput>,
    /// How to join them (required for `SparkJoin`; for `DirectoryJoin` only the column lists
    /// are read).
    #[serde(default)]
    pub joined_dataset: Option<JoinedDataset>,
}

/// One input dataset of the join.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetInput {
    /// The contract's dataset id; its key and sealed image are looked up by it.
    pub id: String,
    /// The providing party (informative; the contract's `owner`/`provider` is authoritative).
    #[serde(default)]
    pub provider: String,
    /// The table name in the SQL query.
    pub name: String,
    /// The CSV file inside the sealed image (its relative path).
    pub file: String,
    /// Columns to keep (all when absent).
    #[serde(default)]
    pub select_variables: Option<Vec<String>>,
    /// Where the sealed image is mounted (overridden by `--datasets DIR`: `DIR/<name>`).
    #[serde(default)]
    pub mount_path: String,
}

/// The join's query and column handling.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinedDataset {
    /// DEPA's output path of the joined file (ignored: ccr keeps it in memory).
    #[serde(default)]
    pub joined_dataset: Option<String>,
    /// A single read-only `SELECT` over the dataset tables.
    #[serde(default)]
    pub joining_query: Option<String>,
    /// The join key column (informative; must be in the result).
    #[serde(default)]
    pub joining_key: Option<String>,
    /// Columns removed from the joined table.
    #[serde(default)]
    pub drop_columns: Vec<String>,
    /// Identifier columns: removed from the features (they are never trained on).
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// DEPA field, ignored.
    #[serde(default)]
    pub model_output_folder: Option<String>,
    /// DEPA field, ignored.
    #[serde(default)]
    pub joined_result_columns: Option<Vec<String>>,
}

/// A train step's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// DEPA's paths (ignored).
    #[serde(default)]
    pub paths: Option<Value>,
    /// How to read the joined table.
    pub dataset_config: DatasetConfig,
    /// The model.
    pub model_config: ModelConfig,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Epochs (full passes over the training split).
    #[serde(default = "default_epochs")]
    pub total_epochs: usize,
    /// Mini-batch size.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Train with DP-SGD ([`crate::dpsgd`]), within `privacy_params`.
    #[serde(default)]
    pub is_private: bool,
    /// DP parameters, read with `is_private`: see [`PRIVACY_PARAMS`].
    #[serde(default)]
    pub privacy_params: Option<Value>,
    /// `classification` or `regression`.
    #[serde(default = "default_task")]
    pub task_type: String,
    /// The loss: `cross_entropy` (softmax cross-entropy, classification; also PyTorch's name
    /// `CrossEntropyLoss`) or `mse` (`MSELoss`, regression); default: by `task_type`.
    #[serde(default)]
    pub loss: Option<String>,
    /// Metrics on the held-out split: `accuracy`, `roc_auc` (binary labels), `f1` (binary: of
    /// the higher class; more classes: macro average), `mse`.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<String>,
    /// Write the held-out split's identifiers, labels and predictions into `metrics.json`
    /// (off by default; the parties agree to it by signing the pipeline digest).
    #[serde(default)]
    pub export_test_predictions: bool,
}

fn default_epochs() -> usize {
    20
}
fn default_batch() -> usize {
    32
}
fn default_task() -> String {
    "classification".into()
}
fn default_metrics() -> Vec<String> {
    vec!["accuracy".into()]
}

/// How the joined table becomes features and labels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Only `tabular`.
    #[serde(rename = "type", default = "default_tabular")]
    pub kind: String,
    /// The label column.
    pub target_variable: String,
    /// Feature columns (default: every column but the target, identifiers and dropped ones).
    #[serde(default)]
    pub feature_columns: Option<Vec<String>>,
    /// Train/val/test split.
    #[serde(default)]
    pub splits: Splits,
    /// Preprocessing.
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// DEPA field, ignored.
    #[serde(default)]
    pub data_type: Option<String>,
    /// DEPA field: only `drop` (rows with a missing value are dropped) is supported.
    #[serde(default)]
    pub missing_strategy: Option<String>,
}

fn default_tabular() -> String {
    "tabular".into()
}

/// Split fractions (summing to 1), the seed, and whether to stratify by label.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Splits {
    /// Training fraction.
    pub train: f64,
    /// Validation fraction (may be 0).
    #[serde(default)]
    pub val: f64,
    /// Held-out test fraction.
    pub test: f64,
    /// Seed of the split, the initialisation and the batch order.
    #[serde(default)]
    pub random_state: u64,
    /// Stratify the split by label (classification only).
    #[serde(default)]
    pub stratify: bool,
}

impl Default for Splits {
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.0,
            test: 0.2,
            random_state: 0,
            stratify: true,
        }
    }
}

/// Preprocessing of the features.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// `standard` (zero mean, unit variance), `minmax` (to [0, 1]), `maxabs` (divide by the
    /// largest absolute value) or `none`; fitted on the training split only.
    #[serde(default = "default_scaler")]
    pub scaler: String,
}

fn default_scaler() -> String {
    "standard".into()
}

impl Default for Preprocessing {
    fn default() -> Self {
        Self {
            scaler: default_scaler(),
        }
    }
}

/// The model, instantiated from config (ccr's model config; DEPA scenarios rewrite theirs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `LogisticRegression` (one linear layer, softmax over the classes), `LinearRegression`
    /// (one linear layer, one output), `MLP`, or `CNN` (a 3×3 convolution with `relu` and 2×2
    /// average pooling in front of an MLP; the features are the pixels of `input_shape`).
    pub name: String,
    /// Hidden layer widths of an `MLP` (and of a `CNN`'s dense part; may be empty there).
    #[serde(default)]
    pub hidden_layers: Vec<usize>,
    /// Activation between dense layers: `relu` or `tanh`.
    #[serde(default = "default_activation")]
    pub activation: String,
    /// `CNN`: the image shape `[channels, height, width]` (height and width even); the feature
    /// columns, in order, are the pixels channel by channel, row by row.
    #[serde(default)]
    pub input_shape: Option<[usize; 3]>,
    /// `CNN`: output channels of the convolution (one convolution layer).
    #[serde(default)]
    pub conv_channels: Option<usize>,
    /// Where the model comes from: `ccr_instantiate` (default: made from this config) or
    /// `Safetensors` (the consumer's base model, in ccr's `model.safetensors` layout, whose
    /// shapes must match this config; training continues from it).
    #[serde(default)]
    pub model_format: Option<String>,
    /// `Safetensors`: the base model's path in the CCR (`ccr-init --base-model` overrides it).
    #[serde(default)]
    pub model_path: Option<String>,
    /// `Safetensors`: the base model's SHA-256 (64 hex): the pipeline digest, and so every
    /// party's signature, fixes which model is trained.
    #[serde(default)]
    pub model_sha256: Option<String>,
    /// `XGBoost`: the number of boosting rounds (trees per class).
    #[serde(default)]
    pub n_estimators: Option<usize>,
    /// `XGBoost`: the maximum tree depth (default 6).
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// `XGBoost`: the learning rate (`eta`, default 0.3).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// `XGBoost`: L2 regularisation of the leaf weights (`lambda`, default 1).
    #[serde(default)]
    pub l2_regularization: Option<f64>,
    /// `XGBoost`: the minimum hessian sum in a child (default 1).
    #[serde(default)]
    pub min_child_weight: Option<f64>,
    /// `XGBoost`: `binary:logistic`, `multi:softprob` (one-vs-rest logistic boosters, their
    /// margins through a softmax), or `reg:squarederror`.
    #[serde(default)]
    pub objective: Option<String>,
    /// `XGBoost`: the row subsampling rate per tree, in (0, 1] (default 1).
    #[serde(default)]
    pub subsample: Option<f64>,
    /// `XGBoost`: the seed of the subsampling (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The `model_config` fields of an `XGBoost` model.
pub const XGB_FIELDS: &[&str] = &[
    "n_estimators",
    "max_depth",
    "learning_rate",
    "l2_regularization",
    "min_child_weight",
    "objective",
    "subsample",
    "seed",
];

fn default_activation() -> String {
    "relu".into()
}

/// The optimizer: `{"name": "Adam"|"AdamW"|"SGD", "params": {"lr", "weight_decay", "momentum"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// `Adam`, `AdamW` or `SGD`.
    pub name: String,
    /// Hyper-parameters.
    #[serde(default)]
    pub params: OptimizerParams,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            name: "Adam".into(),
            params: OptimizerParams::default(),
        }
    }
}

/// Optimizer hyper-parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerParams {
    /// Learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// L2 weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
}

fn default_lr() -> f64 {
    1e-3
}

impl Default for OptimizerParams {
    fn default() -> Self {
        Self {
            lr: default_lr(),
            weight_decay: 0.0,
            momentum: 0.0,
        }
    }
}

/// The fields of `privacy_params` (DP-SGD, read with `is_private`): `epsilon` (the run's
/// budget: training stops when it is spent), `delta`, `max_grad_norm` (per-sample clipping
/// norm), `noise_multiplier` (optional: without it the accountant picks the smallest that
/// fits the budget).
pub const PRIVACY_PARAMS: &[&str] = &["epsilon", "delta", "max_grad_norm", "noise_multiplier"];

/// Errors of the pipeline config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The JSON does not parse or has an unknown or mistyped field.
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

/// The parsed pipeline: one join, one train step.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The join step.
    pub join: Join,
    /// The training config.
    pub train: TrainConfig,
    /// `Train_DL` or `Train_ML`.
    pub train_kind: &'static str,
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
        let field = |path: &str, reason: &str| PipelineError::Field {
            path: path.into(),
            reason: reason.into(),
        };
        if cfg.pipeline.len() != 2 {
            return Err(field(
                "pipeline",
                "expected two steps: a join, then a train step",
            ));
        }
        let mut it = cfg.pipeline.into_iter();
        let join = match it.next() {
            Some(Step::SparkJoin(c)) => {
                let q = c
                    .joined_dataset
                    .as_ref()
                    .and_then(|j| j.joining_query.as_deref());
                if q.is_none_or(|q| q.trim().is_empty()) {
                    return Err(field(
                        "pipeline[0].config.joined_dataset.joining_query",
                        "required for SparkJoin",
                    ));
                }
                Join::Keyed(c)
            }
            Some(Step::DirectoryJoin(c)) => Join::Union(c),
            _ => {
                return Err(field(
                    "pipeline[0].name",
                    "the first step must be SparkJoin or DirectoryJoin",
                ));
            }
        };
        if join.config().datasets.is_empty() {
            return Err(field("pipeline[0].config.datasets", "empty"));
        }
        let (train, train_kind) = match it.next() {
            Some(Step::TrainDl(c)) => (c, "Train_DL"),
            Some(Step::TrainMl(c)) => (c, "Train_ML"),
            Some(Step::TrainXgb(c)) => (c, "Train_XGB"),
            _ => {
                return Err(field(
                    "pipeline[1].name",
                    "the second step must be Train_DL, Train_ML or Train_XGB",
                ));
            }
        };
        let p = "pipeline[1].config";
        if train.dataset_config.kind != "tabular" {
            return Err(field(
                &format!("{p}.dataset_config.type"),
                "only `tabular` is supported",
            ));
        }
        if let Some(m) = &train.dataset_config.missing_strategy
            && m != "drop"
        {
            return Err(field(
                &format!("{p}.dataset_config.missing_strategy"),
                "only `drop` is supported",
            ));
        }
        let s = &train.dataset_config.splits;
        if !(s.train > 0.0
            && s.test > 0.0
            && s.val >= 0.0
            && ((s.train + s.val + s.test) - 1.0).abs() < 1e-6)
        {
            return Err(field(
                &format!("{p}.dataset_config.splits"),
                "train > 0, test > 0, val >= 0, summing to 1",
            ));
        }
        if !["standard", "minmax", "maxabs", "none"]
            .contains(&train.dataset_config.preprocessing.scaler.as_str())
        {
            return Err(field(
                &format!("{p}.dataset_config.preprocessing.scaler"),
                "one of standard, minmax, maxabs, none",
            ));
        }
        if let Some(l) = &train.loss {
            let want = match l.as_str() {
                "cross_entropy" | "CrossEntropyLoss" => "classification",
                "mse" | "MSELoss" => "regression",
                _ => {
                    return Err(field(
                        &format!("{p}.loss"),
                        "cross_entropy (CrossEntropyLoss) or mse (MSELoss)",
                    ));
                }
            };
            if train.task_type != want {
                return Err(field(
                    &format!("{p}.loss"),
                    &format!(
                        "`{l}` is the loss of {want}, the task_type is {}",
                        train.task_type
                    ),
                ));
            }
        }
        if !["classification", "regression"].contains(&train.task_type.as_str()) {
            return Err(field(
                &format!("{p}.task_type"),
                "classification or regression",
            ));
        }
        match (train.model_config.name.as_str(), train.task_type.as_str()) {
            ("LogisticRegression", "classification")
            | ("MLP", _)
            | ("CNN", _)
            | ("XGBoost", _)
            | ("LinearRegression", "regression") => {}
            (n, t) => {
                return Err(field(
                    &format!("{p}.model_config.name"),
                    &format!(
                        "`{n}` cannot do {t} (LogisticRegression: classification, LinearRegression: regression, MLP, CNN and XGBoost: both)"
                    ),
                ));
            }
        }
        let mc = &train.model_config;
        let xgb_set = mc.n_estimators.is_some()
            || mc.max_depth.is_some()
            || mc.learning_rate.is_some()
            || mc.l2_regularization.is_some()
            || mc.min_child_weight.is_some()
            || mc.objective.is_some()
            || mc.subsample.is_some()
            || mc.seed.is_some();
        if (train_kind == "Train_XGB") != (mc.name == "XGBoost") {
            return Err(field(
                &format!("{p}.model_config.name"),
                "Train_XGB trains model XGBoost, and XGBoost only in Train_XGB",
            ));
        }
        if mc.name == "XGBoost" {
            if train.is_private {
                return Err(field(
                    &format!("{p}.is_private"),
                    "Train_XGB has no DP training; a dataset that requires DP cannot be used with it",
                ));
            }
            let obj = mc
                .objective
                .as_deref()
                .unwrap_or(if train.task_type == "regression" {
                    "reg:squarederror"
                } else {
                    "binary:logistic"
                });
            let fits = match obj {
                "binary:logistic" | "multi:softprob" | "multi:softmax" => {
                    train.task_type == "classification"
                }
                "reg:squarederror" => train.task_type == "regression",
                _ => false,
            };
            if !fits {
                return Err(field(
                    &format!("{p}.model_config.objective"),
                    &format!(
                        "`{obj}` with task_type {}: binary:logistic or multi:softprob for classification, reg:squarederror for regression",
                        train.task_type
                    ),
                ));
            }
            for (k, ok) in [
                ("n_estimators", mc.n_estimators.is_none_or(|n| n > 0)),
                (
                    "learning_rate",
                    mc.learning_rate.is_none_or(|x| x > 0.0 && x.is_finite()),
                ),
                (
                    "l2_regularization",
                    mc.l2_regularization
                        .is_none_or(|x| x >= 0.0 && x.is_finite()),
                ),
                (
                    "min_child_weight",
                    mc.min_child_weight
                        .is_none_or(|x| x >= 0.0 && x.is_finite()),
                ),
                (
                    "subsample",
                    mc.subsample.is_none_or(|x| x > 0.0 && x <= 1.0),
                ),
            ] {
                if !ok {
                    return Err(field(
                        &format!("{p}.model_config.{k}"),
                        "out of range (n_estimators > 0, learning_rate > 0, l2_regularization and min_child_weight >= 0, subsample in (0, 1])",
                    ));
                }
            }
        } else if xgb_set {
            return Err(field(
                &format!("{p}.model_config"),
                &format!("{} are for XGBoost only", XGB_FIELDS.join(", ")),
            ));
        }
        match mc.model_format.as_deref() {
            None | Some("ccr_instantiate") => {
                if mc.model_path.is_some() || mc.model_sha256.is_some() {
                    return Err(field(
                        &format!("{p}.model_config.model_format"),
                        "model_path and model_sha256 go with model_format Safetensors",
                    ));
                }
            }
            Some("Safetensors") => {
                if mc.name == "XGBoost" {
                    return Err(field(
                        &format!("{p}.model_config.model_format"),
                        "an XGBoost model is not read from safetensors",
                    ));
                }
                if !mc.model_sha256.as_ref().is_some_and(|h| {
                    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                }) {
                    return Err(field(
                        &format!("{p}.model_config.model_sha256"),
                        "64 lowercase hex characters (SHA-256 of the base model) are required with model_format Safetensors",
                    ));
                }
            }
            Some(_) => {
                return Err(field(
                    &format!("{p}.model_config.model_format"),
                    "ccr_instantiate or Safetensors",
                ));
            }
        }
        if mc.name == "CNN" {
            match mc.input_shape {
                Some([c, h, w]) if c > 0 && h >= 2 && w >= 2 && h % 2 == 0 && w % 2 == 0 => {}
                _ => {
                    return Err(field(
                        &format!("{p}.model_config.input_shape"),
                        "a CNN needs [channels, height, width] with even height and width >= 2",
                    ));
                }
            }
            if mc.conv_channels.is_none_or(|c| c == 0) {
                return Err(field(
                    &format!("{p}.model_config.conv_channels"),
                    "a CNN needs the convolution's output channels (> 0)",
                ));
            }
        } else if mc.input_shape.is_some() || mc.conv_channels.is_some() {
            return Err(field(
                &format!("{p}.model_config"),
                "input_shape and conv_channels are for a CNN only",
            ));
        }
        if train.model_config.name == "MLP" && train.model_config.hidden_layers.is_empty() {
            return Err(field(
                &format!("{p}.model_config.hidden_layers"),
                "an MLP needs at least one hidden layer",
            ));
        }
        if !["relu", "tanh"].contains(&train.model_config.activation.as_str()) {
            return Err(field(
                &format!("{p}.model_config.activation"),
                "relu or tanh",
            ));
        }
        if !["Adam", "AdamW", "SGD"].contains(&train.optimizer.name.as_str()) {
            return Err(field(&format!("{p}.optimizer.name"), "Adam, AdamW or SGD"));
        }
        if train.optimizer.params.lr.is_nan() || train.optimizer.params.lr <= 0.0 {
            return Err(field(&format!("{p}.optimizer.params.lr"), "must be > 0"));
        }
        if train.total_epochs == 0 || train.batch_size == 0 {
            return Err(field(p, "total_epochs and batch_size must be > 0"));
        }
        for (i, m) in train.metrics.iter().enumerate() {
            if !["accuracy", "roc_auc", "f1", "mse"].contains(&m.as_str()) {
                return Err(field(
                    &format!("{p}.metrics[{i}]"),
                    "accuracy, roc_auc, f1 or mse",
                ));
            }
        }
        if train.is_private {
            let pp = train.privacy_params.as_ref();
            let num = |k: &str| {
                pp.and_then(|v| v.get(k)).and_then(|v| {
                    v.as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                })
            };
            if !pp.is_some_and(Value::is_object) {
                return Err(field(
                    &format!("{p}.privacy_params"),
                    "an object {\"epsilon\", \"delta\", \"max_grad_norm\"[, \"noise_multiplier\"]} is required with is_private",
                ));
            }
            if let Some(k) = pp
                .and_then(Value::as_object)
                .and_then(|m| m.keys().find(|k| !PRIVACY_PARAMS.contains(&k.as_str())))
            {
                return Err(field(
                    &format!("{p}.privacy_params.{k}"),
                    "unknown (known: epsilon, delta, max_grad_norm, noise_multiplier)",
                ));
            }
            for (k, ok, want) in [
                (
                    "epsilon",
                    num("epsilon").is_some_and(|e| e > 0.0 && e.is_finite()),
                    "a number > 0",
                ),
                (
                    "delta",
                    num("delta").is_some_and(|d| d > 0.0 && d < 1.0),
                    "a number in (0, 1)",
                ),
                (
                    "max_grad_norm",
                    num("max_grad_norm").is_some_and(|c| c > 0.0 && c.is_finite()),
                    "a number > 0",
                ),
            ] {
                if !ok {
                    return Err(field(&format!("{p}.privacy_params.{k}"), want));
                }
            }
            if pp.and_then(|v| v.get("noise_multiplier")).is_some()
                && !num("noise_multiplier").is_some_and(|s| s > 0.0 && s.is_finite())
            {
                return Err(field(
                    &format!("{p}.privacy_params.noise_multiplier"),
                    "a number > 0",
                ));
            }
        }
        Ok(Self {
            join,
            train,
            train_kind,
        })
    }
}

//! The pipeline config's fields, as serde reads them: every value ccr reads is typed here
//! (an unknown value is an error naming its JSON path, such as
//! `pipeline[1].config.model_config.activation: unknown variant ...`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dataset::DatasetConfig;
use super::loss::LossConfig;
use super::metric::{Metric, MetricName, MetricParams};
use super::scheduler::Scheduler;

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
    /// DEPA's host paths, mapped (never followed): `input_dataset_path` names a one-step
    /// pipeline's dataset (`/mnt/remote/<dataset>/<file>`) or the join's output,
    /// `base_model_path` the base model (`ccr-init --base-model` overrides it),
    /// `trained_model_output_path` is where ccr's sealed output goes (`--out`).
    #[serde(default)]
    pub paths: Option<Paths>,
    /// DEPA's base model format: `onnx` (the graph and weights come from the base model) or
    /// `safetensors` (a `state_dict` for `model_config`'s graph).
    #[serde(default)]
    pub model_type: Option<ModelType>,
    /// DEPA's `device`: `cpu`, `cuda`, `cuda:N`, `gpu` or `auto`; a GPU only where this
    /// `ccr-init` was built with one (`gpu` feature), else the run is refused.
    #[serde(default)]
    pub device: Option<String>,
    /// How to read the joined table or the dataset file.
    pub dataset_config: DatasetConfig,
    /// The model: ccr's own (`{"name": "MLP", ...}`) or DEPA's layer graph (`{"layers",
    /// "forward", ...}`); absent when the ONNX base model (`model_type` `onnx`) is the model.
    #[serde(default, deserialize_with = "model_config")]
    pub model_config: ModelConfig,
    /// The optimizer.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule, stepped after every optimizer step as DEPA's trainer steps
    /// it (`{"name": "CyclicLR", "params": {...}}`, PyTorch's `torch.optim.lr_scheduler`).
    #[serde(default)]
    pub scheduler: Option<Scheduler>,
    /// Epochs (full passes over the training split).
    #[serde(default = "default_epochs")]
    pub total_epochs: usize,
    /// Mini-batch size.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Train with DP-SGD ([`crate::learn::dp::sgd`]), within `privacy_params`.
    #[serde(default)]
    pub is_private: bool,
    /// DP parameters, read with `is_private`: see [`PRIVACY_PARAMS`].
    #[serde(default)]
    pub privacy_params: Option<Value>,
    /// `classification` (default) or `regression`.
    #[serde(default)]
    pub task_type: TaskType,
    /// The loss by ccr's name; default: by `task_type`.
    #[serde(default)]
    pub loss: Option<Loss>,
    /// The loss as DEPA writes it (`{"class": "torch.nn.CrossEntropyLoss", "params": {...}}`);
    /// instead of `loss`.
    #[serde(default)]
    pub loss_config: Option<LossConfig>,
    /// Metrics on the held-out split.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<Metric>,
    /// Write the held-out split's identifiers, labels and predictions into `metrics.json`
    /// (off by default; the parties agree to it by signing the pipeline digest).
    #[serde(default)]
    pub export_test_predictions: bool,
}

/// DEPA's `paths`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    /// The dataset file (one-step pipelines: `/mnt/remote/<dataset>/<file>`) or the join's
    /// output (two-step pipelines: must be `joined_dataset.joined_dataset`).
    #[serde(default)]
    pub input_dataset_path: Option<String>,
    /// The base model's path in the CCR.
    #[serde(default)]
    pub base_model_path: Option<String>,
    /// DEPA's output folder; ccr seals its output to `--out` instead.
    #[serde(default)]
    pub trained_model_output_path: Option<String>,
}

/// DEPA's `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// An ONNX base model (`torch.onnx.export`): graph and weights.
    Onnx,
    /// A safetensors `state_dict` of `model_config`'s graph.
    Safetensors,
}

/// `model_config`: DEPA's layer graph (it has `layers` or `forward`), or ccr's own fields.
fn model_config<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ModelConfig, D::Error> {
    use serde::de::Error;
    let v = Value::deserialize(d)?;
    if v.get("layers").is_some() || v.get("forward").is_some() {
        let spec = crate::learn::graph::GraphSpec::parse(&v).map_err(D::Error::custom)?;
        return Ok(ModelConfig {
            name: ModelName::Graph,
            graph: Some(std::sync::Arc::new(spec)),
            ..ModelConfig::default()
        });
    }
    // DEPA's Train_XGB model_config has no `name`: XGBoost's fields name the model.
    let mut v = v;
    if let Some(m) = v.as_object_mut()
        && !m.contains_key("name")
        && m.keys().any(|k| XGB_FIELDS.contains(&k.as_str()))
    {
        m.insert("name".into(), Value::from("XGBoost"));
    }
    serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        let inner = e.into_inner();
        if p == "." {
            D::Error::custom(inner)
        } else {
            D::Error::custom(format!("at `{p}`: {inner}"))
        }
    })
}

fn default_epochs() -> usize {
    20
}
fn default_batch() -> usize {
    32
}
fn default_metrics() -> Vec<Metric> {
    vec![Metric {
        name: MetricName::Accuracy,
        params: MetricParams::default(),
        key: "accuracy".into(),
    }]
}

/// The task (`task_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    /// Labels are classes (numbers; class indices in ascending order of value).
    #[default]
    Classification,
    /// Labels are values.
    Regression,
}

impl TaskType {
    /// `classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classification => "classification",
            Self::Regression => "regression",
        }
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The loss (`loss`), by ccr's or PyTorch's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// Softmax cross-entropy (classification); also `CrossEntropyLoss`.
    #[serde(rename = "cross_entropy", alias = "CrossEntropyLoss")]
    CrossEntropy,
    /// Mean squared error (regression); also `MSELoss`.
    #[serde(rename = "mse", alias = "MSELoss")]
    Mse,
}

impl Loss {
    /// ccr's name (`cross_entropy`, `mse`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrossEntropy => "cross_entropy",
            Self::Mse => "mse",
        }
    }

    /// The task this loss trains.
    pub fn task(self) -> TaskType {
        match self {
            Self::CrossEntropy => TaskType::Classification,
            Self::Mse => TaskType::Regression,
        }
    }
}

/// The model: ccr's own fields, or a graph (DEPA's layer graph, or an ONNX base model's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A DEPA layer graph (`name` is then `Graph`).
    #[serde(skip)]
    pub graph: Option<std::sync::Arc<crate::learn::graph::GraphSpec>>,
    /// `LogisticRegression` (one linear layer, softmax over the classes), `LinearRegression`
    /// (one linear layer, one output), `MLP`, or `CNN` (a 3×3 convolution with `relu` and 2×2
    /// average pooling in front of an MLP; the features are the pixels of `input_shape`).
    pub name: ModelName,
    /// Hidden layer widths of an `MLP` (and of a `CNN`'s dense part; may be empty there).
    #[serde(default)]
    pub hidden_layers: Vec<usize>,
    /// Activation between dense layers.
    #[serde(default)]
    pub activation: Activation,
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
    pub model_format: Option<ModelFormat>,
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
    /// `XGBoost`: `binary:logistic`, `multi:softprob` (one tree per class per round on the
    /// softmax loss, as XGBoost), or `reg:squarederror`.
    #[serde(default)]
    pub objective: Option<XgbObjective>,
    /// `XGBoost`: the row subsampling rate per tree, in (0, 1] (default 1).
    #[serde(default)]
    pub subsample: Option<f64>,
    /// `XGBoost`: the seed of the subsampling (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// `XGBoost`: the metric XGBoost's `evals` would print, computed on the validation split
    /// (the test split when there is none) after training: `auc`, `logloss`, `error` (binary),
    /// `mlogloss`, `merror` (multi-class), `rmse`, `mae` (regression).
    #[serde(default)]
    pub eval_metric: Option<EvalMetric>,
    /// `LogisticRegression` and `LinearRegression`: `lbfgs` (solved on the full training set as
    /// scikit-learn solves them; the default in `Train_ML` without DP) or `sgd` (epochs of
    /// `optimizer`, as in `Train_DL` and under DP).
    #[serde(default)]
    pub solver: Option<Solver>,
    /// `lbfgs` logistic regression: scikit-learn's `C`, the inverse of the L2 penalty's strength
    /// (default 1).
    #[serde(default, rename = "C")]
    pub c: Option<f64>,
    /// `lbfgs`: the most iterations (default 100, scikit-learn's).
    #[serde(default)]
    pub max_iter: Option<u64>,
    /// `lbfgs`: the gradient norm at which to stop (default 1e-4, scikit-learn's `tol`).
    #[serde(default)]
    pub tol: Option<f64>,
}

/// How `LogisticRegression` and `LinearRegression` are fitted (`model_config.solver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// L-BFGS on the full training set (scikit-learn's `lbfgs`).
    Lbfgs,
    /// Mini-batch epochs of the pipeline's `optimizer`.
    Sgd,
}

impl Default for ModelConfig {
    /// No `model_config`: the ONNX base model is the model.
    fn default() -> Self {
        Self {
            graph: None,
            name: ModelName::BaseModel,
            hidden_layers: Vec::new(),
            activation: Activation::default(),
            input_shape: None,
            conv_channels: None,
            model_format: None,
            model_path: None,
            model_sha256: None,
            n_estimators: None,
            max_depth: None,
            learning_rate: None,
            l2_regularization: None,
            min_child_weight: None,
            objective: None,
            subsample: None,
            seed: None,
            eval_metric: None,
            solver: None,
            c: None,
            max_iter: None,
            tol: None,
        }
    }
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
    "eval_metric",
];

/// `model_config.eval_metric` (XGBoost's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalMetric {
    /// ROC AUC (binary).
    Auc,
    /// Mean negative log-likelihood (binary).
    Logloss,
    /// Error rate at threshold 0.5 (binary).
    Error,
    /// Mean negative log-likelihood of the softmax (multi-class).
    Mlogloss,
    /// Error rate of the argmax (multi-class).
    Merror,
    /// Root mean squared error (regression).
    Rmse,
    /// Mean absolute error (regression).
    Mae,
}

impl EvalMetric {
    /// XGBoost's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auc => "auc",
            Self::Logloss => "logloss",
            Self::Error => "error",
            Self::Mlogloss => "mlogloss",
            Self::Merror => "merror",
            Self::Rmse => "rmse",
            Self::Mae => "mae",
        }
    }

    /// Whether it is a regression metric.
    pub fn regression(self) -> bool {
        matches!(self, Self::Rmse | Self::Mae)
    }
}

/// The model (`model_config.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelName {
    /// One linear layer, softmax over the classes (classification).
    LogisticRegression,
    /// One linear layer, one output (regression).
    LinearRegression,
    /// Linear layers with an activation between them.
    #[serde(rename = "MLP")]
    Mlp,
    /// A 3×3 convolution with `relu` and 2×2 average pooling in front of an MLP.
    #[serde(rename = "CNN")]
    Cnn,
    /// Gradient-boosted trees (`Train_XGB` only).
    #[serde(rename = "XGBoost")]
    XgBoost,
    /// DEPA's layer graph (`model_config` with `layers` and `forward`).
    #[serde(rename = "graph", skip_deserializing)]
    Graph,
    /// The ONNX base model's graph (`model_type` `onnx`, no `model_config`).
    #[serde(rename = "base_model", skip_deserializing)]
    BaseModel,
}

impl ModelName {
    /// The config's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LogisticRegression => "LogisticRegression",
            Self::LinearRegression => "LinearRegression",
            Self::Mlp => "MLP",
            Self::Cnn => "CNN",
            Self::XgBoost => "XGBoost",
            Self::Graph => "graph",
            Self::BaseModel => "base_model",
        }
    }

    /// Whether this model can do `task` (a graph's task is the config's).
    pub fn does(self, task: TaskType) -> bool {
        !matches!(
            (self, task),
            (Self::LogisticRegression, TaskType::Regression)
                | (Self::LinearRegression, TaskType::Classification)
        )
    }
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The activation between dense layers (`model_config.activation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// `relu` or `tanh`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Tanh => "tanh",
        }
    }
}

/// Where the model comes from (`model_config.model_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelFormat {
    /// Made from this config (the default).
    #[serde(rename = "ccr_instantiate")]
    Instantiate,
    /// The consumer's base model, `model.safetensors` in ccr's layout.
    Safetensors,
}

/// The objective of an `XGBoost` model (`model_config.objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XgbObjective {
    /// Two classes, log loss.
    #[serde(rename = "binary:logistic")]
    BinaryLogistic,
    /// More classes: softmax log loss, one tree per class per round.
    #[serde(rename = "multi:softprob")]
    MultiSoftprob,
    /// As `multi:softprob` (ccr reports the class and the probabilities).
    #[serde(rename = "multi:softmax")]
    MultiSoftmax,
    /// Regression, squared error.
    #[serde(rename = "reg:squarederror")]
    RegSquaredError,
}

impl XgbObjective {
    /// XGBoost's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BinaryLogistic => "binary:logistic",
            Self::MultiSoftprob => "multi:softprob",
            Self::MultiSoftmax => "multi:softmax",
            Self::RegSquaredError => "reg:squarederror",
        }
    }

    /// The task it trains.
    pub fn task(self) -> TaskType {
        match self {
            Self::RegSquaredError => TaskType::Regression,
            _ => TaskType::Classification,
        }
    }

    /// The default for a task: `binary:logistic` or `reg:squarederror`.
    pub fn default_for(task: TaskType) -> Self {
        match task {
            TaskType::Classification => Self::BinaryLogistic,
            TaskType::Regression => Self::RegSquaredError,
        }
    }
}

/// The optimizer: `{"name": "Adam"|"AdamW"|"SGD", "params": {"lr", "weight_decay", "momentum"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// The algorithm.
    pub name: OptimizerName,
    /// Hyper-parameters.
    #[serde(default)]
    pub params: OptimizerParams,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            name: OptimizerName::Adam,
            params: OptimizerParams::default(),
        }
    }
}

/// The optimizer's algorithm (`optimizer.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OptimizerName {
    /// Adam (L2 weight decay).
    Adam,
    /// AdamW (decoupled weight decay).
    AdamW,
    /// SGD with optional momentum.
    #[serde(rename = "SGD")]
    Sgd,
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

/// The fields of `privacy_params` (read with `is_private`): `epsilon` (the run's budget:
/// training stops when it is spent), `delta`, `noise_multiplier` (optional: without it the
/// accountant picks the smallest that fits the budget), `mechanism` (`gaussian`, the only one);
/// DP-SGD's `max_grad_norm` (per-sample clipping norm), DP trees' `clip_value` (the gradient
/// bound of `reg:squarederror`).
pub const PRIVACY_PARAMS: &[&str] = &[
    "epsilon",
    "delta",
    "max_grad_norm",
    "noise_multiplier",
    "clip_value",
    "mechanism",
];

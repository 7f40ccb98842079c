//! `loss_config`: a loss in DEPA's class form (`{"class": "torch.nn.X", "params": {...}}`), with
//! PyTorch's parameter names and defaults.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod expr;

use super::TaskType;
use expr::ExpressionLoss;

/// A loss in DEPA's class form: a `torch.nn` loss class and its parameters. Every loss is a
/// sum of per-sample terms, so DP-SGD clips each sample's gradient of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossConfig {
    /// The class (for the expression form, its components' loss class).
    pub class: LossClass,
    /// Its parameters (for the expression form, the expression's `reduction`).
    pub params: LossParams,
    /// The expression form (DEPA's `expression`, `components`, `variables`).
    #[serde(skip)]
    pub expression: Option<std::sync::Arc<ExpressionLoss>>,
}

/// The `torch.nn` loss classes ccr computes (`torch.nn.X`, `nn.X` or `X`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossClass {
    /// Softmax cross-entropy over the classes (`label_smoothing`).
    CrossEntropyLoss,
    /// `(z − y)²`.
    #[serde(rename = "MSELoss")]
    MseLoss,
    /// `|z − y|`.
    L1Loss,
    /// `½ d²` for `|d| < delta`, else `delta (|d| − ½ delta)`.
    HuberLoss,
    /// `½ d² / beta` for `|d| < beta`, else `|d| − ½ beta`.
    SmoothL1Loss,
    /// Binary cross-entropy of a probability (the model ends in a sigmoid, one output):
    /// `−(y ln p + (1 − y) ln(1 − p))`, each log clamped at −100 as PyTorch does.
    #[serde(rename = "BCELoss")]
    BceLoss,
    /// Binary cross-entropy of a logit (one output): `max(z, 0) − y z + ln(1 + e^−|z|)`.
    #[serde(rename = "BCEWithLogitsLoss")]
    BceWithLogitsLoss,
    /// Negative log-likelihood of log-probabilities (the model ends in a log-softmax):
    /// `−z_y`.
    #[serde(rename = "NLLLoss")]
    NllLoss,
}

impl LossClass {
    /// PyTorch's class name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CrossEntropyLoss => "CrossEntropyLoss",
            Self::MseLoss => "MSELoss",
            Self::L1Loss => "L1Loss",
            Self::HuberLoss => "HuberLoss",
            Self::SmoothL1Loss => "SmoothL1Loss",
            Self::BceLoss => "BCELoss",
            Self::BceWithLogitsLoss => "BCEWithLogitsLoss",
            Self::NllLoss => "NLLLoss",
        }
    }

    /// Whether the model has one output (the positive class's probability or logit), not one
    /// per class.
    pub fn binary(self) -> bool {
        matches!(self, Self::BceLoss | Self::BceWithLogitsLoss)
    }

    /// The task it trains.
    pub fn task(self) -> TaskType {
        match self {
            Self::CrossEntropyLoss | Self::BceLoss | Self::BceWithLogitsLoss | Self::NllLoss => {
                TaskType::Classification
            }
            _ => TaskType::Regression,
        }
    }
}

/// A loss class's parameters (PyTorch's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossParams {
    /// `mean` (default) or `sum` over the batch.
    #[serde(default)]
    pub reduction: Reduction,
    /// CrossEntropyLoss: the share of the target spread evenly over the classes (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// HuberLoss: where the loss turns linear (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// SmoothL1Loss: where the loss turns linear (default 1; 0 is L1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// CrossEntropyLoss, NLLLoss: a weight per class (in ascending order of the label values);
    /// with `reduction` `mean` the batch's loss is `Σ wᵧ ℓ / Σ wᵧ`, as PyTorch's (under DP-SGD
    /// the weighted sum is divided by the expected batch size, as Opacus does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Vec<f64>>,
}

impl Default for LossParams {
    fn default() -> Self {
        Self {
            reduction: Reduction::Mean,
            label_smoothing: None,
            delta: None,
            beta: None,
            weight: None,
        }
    }
}

/// How per-sample losses combine over a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The mean (the gradient is divided by the batch size).
    #[default]
    Mean,
    /// The sum.
    Sum,
}

impl<'de> Deserialize<'de> for LossConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Value::Object(m) = Value::deserialize(d)? else {
            return Err(D::Error::custom(
                "expected {\"class\", \"params\"} or {\"expression\", \"components\", ...}",
            ));
        };
        if m.contains_key("expression") {
            let e = ExpressionLoss::from_json(&m).map_err(D::Error::custom)?;
            let reduction = match m.get("reduction").and_then(Value::as_str) {
                None | Some("mean") => Reduction::Mean,
                Some("sum") => Reduction::Sum,
                Some(r) => {
                    return Err(D::Error::custom(format!("`reduction` `{r}`: mean or sum")));
                }
            };
            let class = e.classes().next().unwrap_or(LossClass::CrossEntropyLoss);
            return Ok(Self {
                class,
                params: LossParams {
                    reduction,
                    ..LossParams::default()
                },
                expression: Some(std::sync::Arc::new(e)),
            });
        }
        let (class, params) = class_and_params(m).map_err(D::Error::custom)?;
        Ok(Self {
            class,
            params,
            expression: None,
        })
    }
}

/// A loss class and its parameters from `{"class", "params"}`.
///
/// # Errors
/// A reason naming the field.
pub(super) fn class_and_params(
    mut m: serde_json::Map<String, Value>,
) -> Result<(LossClass, LossParams), String> {
    if let Some(k) = m.keys().find(|k| *k != "class" && *k != "params") {
        return Err(format!("unknown field `{k}`, expected `class` or `params`"));
    }
    let Some(Value::String(written)) = m.remove("class") else {
        return Err("`class`: a torch.nn loss class is required".into());
    };
    let short = written
        .strip_prefix("torch.nn.")
        .or_else(|| written.strip_prefix("nn."))
        .unwrap_or(&written);
    let class = serde_json::from_value::<LossClass>(Value::String(short.to_string()))
        .map_err(|e| format!("class `{written}`: {e}"))?;
    let params = match m.remove("params") {
        None | Some(Value::Null) => LossParams::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| format!("params: {e}"))?,
    };
    Ok((class, params))
}

//! `loss_config`: a loss in DEPA's class form (`{"class": "torch.nn.X", "params": {...}}`), with
//! PyTorch's parameter names and defaults.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TaskType;

/// A loss in DEPA's class form: a `torch.nn` loss class and its parameters. Every loss is a
/// sum of per-sample terms, so DP-SGD clips each sample's gradient of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossConfig {
    /// The class.
    pub class: LossClass,
    /// Its parameters.
    pub params: LossParams,
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
}

impl LossClass {
    /// The task it trains.
    pub fn task(self) -> TaskType {
        match self {
            Self::CrossEntropyLoss => TaskType::Classification,
            _ => TaskType::Regression,
        }
    }
}

/// A loss class's parameters (PyTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
}

impl Default for LossParams {
    fn default() -> Self {
        Self {
            reduction: Reduction::Mean,
            label_smoothing: None,
            delta: None,
            beta: None,
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
        let Value::Object(mut m) = Value::deserialize(d)? else {
            return Err(D::Error::custom("expected {\"class\", \"params\"}"));
        };
        if m.contains_key("expression") {
            return Err(D::Error::custom(
                "losses by expression (`expression`, `components`, `variables`) are not supported yet; give a `class`",
            ));
        }
        if let Some(k) = m.keys().find(|k| *k != "class" && *k != "params") {
            return Err(D::Error::custom(format!(
                "unknown field `{k}`, expected `class` or `params`"
            )));
        }
        let Some(Value::String(written)) = m.remove("class") else {
            return Err(D::Error::custom(
                "`class`: a torch.nn loss class is required",
            ));
        };
        let short = written
            .strip_prefix("torch.nn.")
            .or_else(|| written.strip_prefix("nn."))
            .unwrap_or(&written);
        let class = LossClass::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(
            short,
        ))
        .map_err(|e| {
            D::Error::custom(format!(
                "class `{written}`: {e} (BCELoss, BCEWithLogitsLoss and NLLLoss need a model that ends in a sigmoid or log-softmax: DEPA model graphs, not yet)"
            ))
        })?;
        let params = match m.remove("params") {
            None | Some(Value::Null) => LossParams::default(),
            Some(v) => {
                serde_json::from_value(v).map_err(|e| D::Error::custom(format!("params: {e}")))?
            }
        };
        Ok(Self { class, params })
    }
}

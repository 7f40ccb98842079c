//! `metrics[]`: held-out metrics as a name or DEPA's `{"name", "params"}` (its `eval_tools.py`,
//! scikit-learn's definitions and parameters).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A held-out metric (`metrics[]`): a name, or DEPA's `{"name", "params"}` (its
/// `eval_tools.py`, scikit-learn's definitions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// Which metric.
    pub name: MetricName,
    /// Its parameters.
    pub params: MetricParams,
    /// The name as the config writes it (the key in `metrics.json`).
    #[serde(skip)]
    pub key: String,
}

/// The metrics ccr computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Fraction of correct classes.
    Accuracy,
    /// Precision (`average`: binary, macro, micro, weighted).
    Precision,
    /// Recall (`average` as precision).
    Recall,
    /// F1 (`average` as precision; also written `f1`).
    #[serde(alias = "f1")]
    F1Score,
    /// ROC AUC: binary labels, or with `multi_class` `ovr` the macro average over classes.
    RocAuc,
    /// Counts of (true class, predicted class), rows the true classes.
    ConfusionMatrix,
    /// Per-class precision, recall, F1 and support, with their averages.
    ClassificationReport,
    /// Precision and recall at each distinct score of the positive class (binary labels).
    PrecisionRecallCurve,
    /// Mean squared error (regression).
    Mse,
    /// Mean absolute error (regression).
    Mae,
    /// Root mean squared error (regression).
    Rmse,
    /// Coefficient of determination (regression; also written `r2`).
    #[serde(alias = "r2")]
    R2Score,
}

impl MetricName {
    /// Whether the metric is of classification (else of regression).
    pub fn is_classification(self) -> bool {
        !matches!(self, Self::Mse | Self::Mae | Self::Rmse | Self::R2Score)
    }
}

/// A metric's `params`: only those scikit-learn's function takes that ccr honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricParams {
    /// precision, recall, f1_score: how per-class values are combined (default: binary for
    /// two classes, macro otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average: Option<Average>,
    /// roc_auc: `ovr` for more than two classes (one-vs-rest, macro average).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_class: Option<MultiClass>,
}

/// scikit-learn's `average`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    /// Of the positive (higher) class; two classes only.
    Binary,
    /// Unweighted mean over classes.
    Macro,
    /// From the total counts (equals accuracy for single-label classes).
    Micro,
    /// Mean over classes weighted by support.
    Weighted,
}

/// scikit-learn's `multi_class` of `roc_auc_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiClass {
    /// One class against the rest, averaged over classes.
    Ovr,
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let (key, params) = match Value::deserialize(d)? {
            Value::String(n) => (n, MetricParams::default()),
            Value::Object(mut m) => {
                if let Some(k) = m.keys().find(|k| *k != "name" && *k != "params") {
                    return Err(D::Error::custom(format!(
                        "unknown field `{k}`, expected `name` or `params`"
                    )));
                }
                let Some(Value::String(name)) = m.remove("name") else {
                    return Err(D::Error::custom("`name`: a metric name is required"));
                };
                let params = match m.remove("params") {
                    None | Some(Value::Null) => MetricParams::default(),
                    Some(v) => serde_json::from_value(v)
                        .map_err(|e| D::Error::custom(format!("{name}: params: {e}")))?,
                };
                (name, params)
            }
            _ => {
                return Err(D::Error::custom(
                    "expected a metric name or {\"name\", \"params\"}",
                ));
            }
        };
        let name =
            MetricName::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&key))?;
        Ok(Self { name, params, key })
    }
}

//! `Train_XGB`: gradient-boosted trees with `forust-ml` (XGBoost's algorithm: second-order
//! gradient boosting with histogram splits), from the pipeline's XGBoost fields.
//!
//! | pipeline `model_config` | forust-ml | default |
//! | --- | --- | --- |
//! | `n_estimators` | `iterations` | 100 |
//! | `max_depth` | `max_depth` | 6 |
//! | `learning_rate` | `learning_rate` | 0.3 |
//! | `l2_regularization` | `l2` | 1 |
//! | `min_child_weight` | `min_leaf_weight` | 1 |
//! | `subsample` | `subsample` | 1 |
//! | `seed` | `seed` | 0 |
//! | `objective` `binary:logistic` / `reg:squarederror` | `LogLoss` / `SquaredLoss` | by task |
//!
//! `multi:softprob` (and `multi:softmax`) train one logistic booster per class (one-vs-rest);
//! the outputs are the class margins, their softmax the probabilities, their argmax the
//! prediction. Binary outputs are `[−m/2, m/2]` for margin `m`, so that the softmax of the two
//! is the booster's sigmoid. Features are used unscaled (trees do not need scaling).
//!
//! The model leaves the CCR as `model.xgb.json`: `{"format": "ccr-xgb/1", "objective",
//! "classes", "feature_columns", "boosters": [forust-ml's JSON model, one per class or one]}`;
//! `forust`'s Python package (`GradientBooster.load_booster`) reads each booster.
//!
//! With `is_private` the trees are trained by [`super::xgb_dp`] (DP-TR Newton): `model.xgb.json`
//! then holds `"dp"` (its trees, base margin and feature bounds) instead of `boosters`.
//!
//! `eval_metric` (XGBoost's names) is computed once on the validation split (the test split when
//! there is none) after training: [`eval_metric`].

use forust_ml::Matrix;
use forust_ml::gradientbooster::GradientBooster;
use forust_ml::objective::ObjectiveType;
use serde_json::{Value, json};

use crate::learn::metrics::{argmax_rows, roc_auc, softmax_rows};
use crate::learn::{Prepared, Split, TrainError};
use crate::pipeline::{EvalMetric, TrainConfig, XgbObjective};

/// A trained tree ensemble.
pub struct XgbModel {
    /// One booster (binary, regression) or one per class (`multi:*`).
    pub boosters: Vec<GradientBooster>,
    /// The objective as the pipeline names it.
    pub objective: XgbObjective,
    /// Output width: classes (2 for binary) or 1.
    pub outputs: usize,
}

/// Column-major `f64` features of rows `idx`.
fn columns(p: &Prepared, idx: &[usize]) -> Vec<f64> {
    let d = p.d();
    let mut out = Vec::with_capacity(idx.len() * d);
    for j in 0..d {
        out.extend(idx.iter().map(|&i| f64::from(p.x[i * d + j])));
    }
    out
}

/// The objective a config trains with (its `objective`, else by task).
pub fn objective(cfg: &TrainConfig) -> XgbObjective {
    cfg.model_config
        .objective
        .unwrap_or_else(|| XgbObjective::default_for(cfg.task_type))
}

fn booster(cfg: &TrainConfig, obj: ObjectiveType) -> Result<GradientBooster, TrainError> {
    let mc = &cfg.model_config;
    let b = GradientBooster::default()
        .set_objective_type(obj)
        .set_iterations(mc.n_estimators.unwrap_or(100))
        .set_max_depth(mc.max_depth.unwrap_or(6))
        .set_learning_rate(mc.learning_rate.unwrap_or(0.3) as f32)
        .set_l2(mc.l2_regularization.unwrap_or(1.0) as f32)
        .set_min_leaf_weight(mc.min_child_weight.unwrap_or(1.0) as f32)
        .set_subsample(mc.subsample.unwrap_or(1.0) as f32)
        .set_seed(mc.seed.unwrap_or(0))
        .set_parallel(true)
        .set_initialize_base_score(true);
    Ok(b)
}

/// Trains on the split's training rows.
///
/// # Errors
/// [`TrainError::Data`] when the labels do not fit the objective (`binary:logistic` with more
/// than two classes) or forust-ml refuses the data.
pub fn train(p: &Prepared, sp: &Split, cfg: &TrainConfig) -> Result<XgbModel, TrainError> {
    let obj = objective(cfg);
    let data = columns(p, &sp.train);
    let m = Matrix::new(&data, sp.train.len(), p.d());
    let y: Vec<f64> = sp.train.iter().map(|&i| f64::from(p.y[i])).collect();
    let fail = |e: forust_ml::errors::ForustError| TrainError::Data(format!("Train_XGB: {e}"));
    let k = p.classes.len();
    let (boosters, outputs) = match obj {
        XgbObjective::RegSquaredError => {
            let mut b = booster(cfg, ObjectiveType::SquaredLoss)?;
            b.fit_unweighted(&m, &y, None).map_err(fail)?;
            (vec![b], 1)
        }
        XgbObjective::BinaryLogistic => {
            if k != 2 {
                return Err(TrainError::Data(format!(
                    "model_config.objective binary:logistic needs two classes, the labels have {k} (use multi:softprob)"
                )));
            }
            let mut b = booster(cfg, ObjectiveType::LogLoss)?;
            b.fit_unweighted(&m, &y, None).map_err(fail)?;
            (vec![b], 2)
        }
        XgbObjective::MultiSoftprob | XgbObjective::MultiSoftmax => {
            let mut bs = Vec::with_capacity(k);
            for c in 0..k {
                let yc: Vec<f64> = y
                    .iter()
                    .map(|&v| if v as usize == c { 1.0 } else { 0.0 })
                    .collect();
                let mut b = booster(cfg, ObjectiveType::LogLoss)?;
                b.fit_unweighted(&m, &yc, None).map_err(fail)?;
                bs.push(b);
            }
            (bs, k)
        }
    };
    Ok(XgbModel {
        boosters,
        objective: obj,
        outputs,
    })
}

impl XgbModel {
    /// Outputs for rows `idx`, row-major `[n, outputs]`: class margins (see the module docs) or
    /// the regression prediction.
    pub fn predict(&self, p: &Prepared, idx: &[usize]) -> Vec<f32> {
        let data = columns(p, idx);
        let m = Matrix::new(&data, idx.len(), p.d());
        let per: Vec<Vec<f64>> = self.boosters.iter().map(|b| b.predict(&m, false)).collect();
        let mut out = Vec::with_capacity(idx.len() * self.outputs);
        for r in 0..idx.len() {
            if self.objective == XgbObjective::BinaryLogistic {
                let margin = per[0][r];
                out.extend([(-margin / 2.0) as f32, (margin / 2.0) as f32]);
            } else {
                out.extend(per.iter().map(|v| v[r] as f32));
            }
        }
        out
    }

    /// `model.xgb.json` (see the module docs).
    ///
    /// # Errors
    /// [`TrainError::Data`] when forust-ml cannot serialise a booster.
    pub fn to_json(&self, p: &Prepared) -> Result<Vec<u8>, TrainError> {
        let boosters = self
            .boosters
            .iter()
            .map(|b| {
                b.json_dump()
                    .map_err(|e| TrainError::Data(format!("Train_XGB: {e}")))
                    .and_then(|s| {
                        serde_json::from_str::<Value>(&s)
                            .map_err(|e| TrainError::Data(format!("Train_XGB: {e}")))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let doc = json!({
            "format": "ccr-xgb/1",
            "objective": self.objective.as_str(),
            "classes": p.classes,
            "feature_columns": p.features,
            "boosters": boosters,
        });
        Ok(serde_json::to_vec(&doc).unwrap_or_default())
    }
}

/// Output width for an objective: classes (2 for binary) or 1.
pub fn outputs_of(obj: XgbObjective, p: &Prepared) -> usize {
    match obj {
        XgbObjective::RegSquaredError => 1,
        XgbObjective::BinaryLogistic => 2,
        _ => p.classes.len(),
    }
}

/// `eval_metric` as XGBoost computes it, from outputs laid out as [`XgbModel::predict`]'s
/// (`k` per row) and labels (class indices or values). `None` when undefined (AUC of one
/// class).
pub fn eval_metric(metric: EvalMetric, out: &[f32], labels: &[f32], k: usize) -> Option<f64> {
    let n = labels.len().max(1) as f64;
    let proba = softmax_rows(out, k);
    let p_true = |r: usize| proba[r * k + labels[r] as usize].max(1e-16);
    Some(match metric {
        EvalMetric::Auc => {
            let scores: Vec<f64> = (0..labels.len()).map(|r| proba[r * k + 1]).collect();
            return roc_auc(&scores, labels);
        }
        EvalMetric::Logloss | EvalMetric::Mlogloss => {
            -(0..labels.len()).map(|r| p_true(r).ln()).sum::<f64>() / n
        }
        EvalMetric::Error | EvalMetric::Merror => {
            let pred = argmax_rows(out, k);
            pred.iter().zip(labels).filter(|(a, b)| a != b).count() as f64 / n
        }
        EvalMetric::Rmse => (out
            .iter()
            .zip(labels)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / n)
            .sqrt(),
        EvalMetric::Mae => {
            out.iter()
                .zip(labels)
                .map(|(a, b)| f64::from(a - b).abs())
                .sum::<f64>()
                / n
        }
    })
}

#[cfg(test)]
mod eval_tests {
    use super::*;

    #[test]
    fn eval_metrics_match_their_definitions() {
        // Binary margins m: outputs [-m/2, m/2]; p = sigmoid(m).
        let m = [2.0f32, -1.0, 0.5, -3.0];
        let out: Vec<f32> = m.iter().flat_map(|&m| [-m / 2.0, m / 2.0]).collect();
        let y = [1.0f32, 0.0, 0.0, 0.0];
        let sig = |m: f32| 1.0 / (1.0 + (-f64::from(m)).exp());
        let ll = -(sig(2.0).ln()
            + (1.0 - sig(-1.0)).ln()
            + (1.0 - sig(0.5)).ln()
            + (1.0 - sig(-3.0)).ln())
            / 4.0;
        let got = eval_metric(EvalMetric::Logloss, &out, &y, 2).unwrap();
        assert!((got - ll).abs() < 1e-9, "{got} vs {ll}");
        assert_eq!(eval_metric(EvalMetric::Error, &out, &y, 2), Some(0.25));
        assert_eq!(eval_metric(EvalMetric::Auc, &out, &y, 2), Some(1.0));
        let r = eval_metric(EvalMetric::Rmse, &[1.0, 3.0], &[0.0, 0.0], 1).unwrap();
        assert!((r - 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(
            eval_metric(EvalMetric::Mae, &[1.0, -3.0], &[0.0, 0.0], 1),
            Some(2.0)
        );
    }
}

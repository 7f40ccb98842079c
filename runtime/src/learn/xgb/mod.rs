//! `Train_XGB`: gradient-boosted trees, XGBoost's algorithm with its `hist` tree method
//! (second-order boosting on per-feature histograms of at most 256 bins, depth-wise growth,
//! learned directions for missing values: [`grow`]), from the pipeline's XGBoost fields.
//!
//! | pipeline `model_config` | XGBoost parameter | default |
//! | --- | --- | --- |
//! | `n_estimators` | `num_boost_round` | 100 |
//! | `max_depth` | `max_depth` | 6 |
//! | `learning_rate` | `eta` | 0.3 |
//! | `l2_regularization` | `lambda` | 1 |
//! | `min_child_weight` | `min_child_weight` | 1 |
//! | `subsample` | `subsample` | 1 |
//! | `seed` | `seed` | 0 |
//! | `objective` | `objective` | by task |
//!
//! Objectives: `binary:logistic` (`g = p − y`, `h = p(1 − p)`), `reg:squarederror`
//! (`g = F − y`, `h = 1`) and `multi:softprob`/`multi:softmax` (one tree per class per round on
//! the softmax's `g = p_c − [y = c]`, `h = 2p_c(1 − p_c)`), hessians floored at 10⁻¹⁶ as
//! XGBoost floors them. The starting margin is fitted as XGBoost 3 fits `base_score`: the
//! log-odds of the positive rate, the mean label, or the centred log class priors. `subsample`
//! keeps each row with that probability per round (the others get zero gradients, as
//! XGBoost's uniform sampling does). Features are used unscaled (trees do not need scaling).
//!
//! Outputs ([`XgbModel::predict`]) are class margins: binary `[−m/2, m/2]` for margin `m`, so
//! that their softmax is the sigmoid; `multi:*` the per-class margins; regression the value.
//!
//! The model leaves the CCR as `model.xgb.json`, **XGBoost's own JSON model format** (the
//! schema of `Booster.save_model("….json")`, XGBoost 3.x): `xgboost.Booster(model_file=…)`
//! loads it and predicts what ccr predicted. `learner.attributes` adds `ccr_format`
//! (`ccr-xgb/2`), `ccr_classes` (a JSON list: class index → label value) and
//! `ccr_feature_columns` (a JSON list of the encoded feature names, in column order).
//!
//! With `is_private` the trees are trained by [`super::xgb_dp`] (DP-TR Newton): `model.xgb.json`
//! then holds ccr's own layout (`ccr-xgb/1` with `"dp"`, see there).
//!
//! `eval_metric` (XGBoost's names) is computed once on the validation split (the test split when
//! there is none) after training: [`eval_metric`].

pub mod bins;
pub mod grow;
pub mod tree;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde_json::{Value, json};

use self::bins::BinMatrix;
use self::grow::{GrowParams, Workspace, grow};
use self::tree::Tree;
use crate::learn::metrics::{argmax_rows, roc_auc, softmax_rows};
use crate::learn::{Prepared, Split, TrainError};
use crate::pipeline::{EvalMetric, TrainConfig, XgbObjective};

/// XGBoost's floor on the hessian (`kRtEps`-sized, its `multiclass_obj` and
/// `regression_loss` use `1e-16`).
const MIN_HESSIAN: f32 = 1e-16;

/// A trained tree ensemble.
pub struct XgbModel {
    /// The trees, round by round (`groups` per round).
    pub trees: Vec<Tree>,
    /// Output groups: 1, or the number of classes for `multi:*` (tree `t` adds to margin
    /// `t % groups`).
    pub groups: usize,
    /// Starting margin per group.
    pub base_margin: Vec<f32>,
    /// The objective as the pipeline names it.
    pub objective: XgbObjective,
    /// Output width: classes (2 for binary) or 1.
    pub outputs: usize,
}

/// The objective a config trains with (its `objective`, else by task).
pub fn objective(cfg: &TrainConfig) -> XgbObjective {
    cfg.model_config
        .objective
        .unwrap_or_else(|| XgbObjective::default_for(cfg.task_type))
}

/// Trains on the split's training rows.
///
/// # Errors
/// [`TrainError::Data`] when the labels do not fit the objective (`binary:logistic` with more
/// than two classes), the training split is empty or there are no feature columns.
pub fn train(p: &Prepared, sp: &Split, cfg: &TrainConfig) -> Result<XgbModel, TrainError> {
    let obj = objective(cfg);
    let k = p.classes.len();
    if obj == XgbObjective::BinaryLogistic && k != 2 {
        return Err(TrainError::Data(format!(
            "model_config.objective binary:logistic needs two classes, the labels have {k} (use multi:softprob)"
        )));
    }
    if sp.train.is_empty() {
        return Err(TrainError::Data(
            "Train_XGB: the training split has no rows".into(),
        ));
    }
    let groups = match obj {
        XgbObjective::MultiSoftprob | XgbObjective::MultiSoftmax => k,
        _ => 1,
    };
    let mc = &cfg.model_config;
    let params = GrowParams {
        max_depth: mc.max_depth.unwrap_or(6),
        eta: mc.learning_rate.unwrap_or(0.3),
        lambda: mc.l2_regularization.unwrap_or(1.0),
        min_child_weight: mc.min_child_weight.unwrap_or(1.0),
    };
    let subsample = mc.subsample.unwrap_or(1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(mc.seed.unwrap_or(0));
    if p.d() == 0 {
        return Err(TrainError::Data("Train_XGB: no feature columns".into()));
    }
    let mut ws = Workspace::new(BinMatrix::build(&p.x, p.d(), &sp.train));
    let y: Vec<f32> = sp.train.iter().map(|&i| p.y[i]).collect();
    let n = y.len();
    let base_margin = base_margin(obj, &y, groups);
    let mut margin: Vec<f32> = (0..n).flat_map(|_| base_margin.iter().copied()).collect();
    let mut all = vec![[0f32; 2]; n * groups];
    let mut trees = Vec::new();
    for _ in 0..mc.n_estimators.unwrap_or(100) {
        gradients(obj, &margin, &y, groups, &mut all);
        if subsample < 1.0 {
            for r in 0..n {
                if rng.r#gen::<f64>() >= subsample {
                    all[r * groups..(r + 1) * groups].fill([0.0; 2]);
                }
            }
        }
        for c in 0..groups {
            ws.load_gradients(|r| all[r * groups + c]);
            let (t, leaves) = grow(&mut ws, &params);
            for l in leaves {
                for &r in &ws.order[l.start..l.end] {
                    margin[r as usize * groups + c] += l.value;
                }
            }
            trees.push(t);
        }
    }
    Ok(XgbModel {
        trees,
        groups,
        base_margin,
        objective: obj,
        outputs: outputs_of(obj, p),
    })
}

/// The starting margin per group, as XGBoost 3 estimates `base_score` from the labels.
fn base_margin(obj: XgbObjective, y: &[f32], groups: usize) -> Vec<f32> {
    let n = y.len().max(1) as f64;
    match obj {
        XgbObjective::RegSquaredError => {
            vec![(y.iter().map(|&v| f64::from(v)).sum::<f64>() / n) as f32]
        }
        XgbObjective::BinaryLogistic => {
            let rate = (y.iter().map(|&v| f64::from(v)).sum::<f64>() / n).clamp(1e-7, 1.0 - 1e-7);
            vec![(rate / (1.0 - rate)).ln() as f32]
        }
        XgbObjective::MultiSoftprob | XgbObjective::MultiSoftmax => {
            let mut count = vec![0f64; groups];
            for &v in y {
                count[v as usize] += 1.0;
            }
            let logs: Vec<f64> = count.iter().map(|&c| (c / n).max(1e-16).ln()).collect();
            let mean = logs.iter().sum::<f64>() / groups as f64;
            logs.iter().map(|&l| (l - mean) as f32).collect()
        }
    }
}

/// Gradient pairs of every row and group at the current margins, row-major `[n, groups]`.
fn gradients(obj: XgbObjective, margin: &[f32], y: &[f32], groups: usize, out: &mut [[f32; 2]]) {
    out.par_chunks_mut(groups * 4096)
        .zip(margin.par_chunks(groups * 4096))
        .zip(y.par_chunks(4096))
        .for_each(|((o, m), y)| match obj {
            XgbObjective::RegSquaredError => {
                for ((o, &m), &y) in o.iter_mut().zip(m).zip(y) {
                    *o = [m - y, 1.0];
                }
            }
            XgbObjective::BinaryLogistic => {
                for ((o, &m), &y) in o.iter_mut().zip(m).zip(y) {
                    let p = 1.0 / (1.0 + (-m).exp());
                    *o = [p - y, (p * (1.0 - p)).max(MIN_HESSIAN)];
                }
            }
            XgbObjective::MultiSoftprob | XgbObjective::MultiSoftmax => {
                for ((o, m), &y) in o
                    .chunks_exact_mut(groups)
                    .zip(m.chunks_exact(groups))
                    .zip(y)
                {
                    let top = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let z: f32 = m.iter().map(|&v| (v - top).exp()).sum();
                    for (c, (o, &v)) in o.iter_mut().zip(m).enumerate() {
                        let p = (v - top).exp() / z;
                        let t = if y as usize == c { 1.0 } else { 0.0 };
                        *o = [p - t, (2.0 * p * (1.0 - p)).max(MIN_HESSIAN)];
                    }
                }
            }
        });
}

impl XgbModel {
    /// Margins of one row (`[d]` raw features) into `m`, one per group.
    pub fn margins(&self, x: &[f32], m: &mut [f32]) {
        m.copy_from_slice(&self.base_margin);
        for (t, tree) in self.trees.iter().enumerate() {
            m[t % self.groups] += tree.predict(x);
        }
    }

    /// Outputs for rows `idx`, row-major `[n, outputs]`: class margins (see the module docs) or
    /// the regression prediction.
    pub fn predict(&self, p: &Prepared, idx: &[usize]) -> Vec<f32> {
        let d = p.d();
        let w = self.outputs;
        let mut out = vec![0f32; idx.len() * w];
        out.par_chunks_mut(w * 1024)
            .zip(idx.par_chunks(1024))
            .for_each(|(o, rows)| {
                let mut m = vec![0f32; self.groups];
                for (o, &i) in o.chunks_exact_mut(w).zip(rows) {
                    self.margins(&p.x[i * d..(i + 1) * d], &mut m);
                    if self.objective == XgbObjective::BinaryLogistic {
                        o.copy_from_slice(&[-m[0] / 2.0, m[0] / 2.0]);
                    } else {
                        o.copy_from_slice(&m);
                    }
                }
            });
        out
    }

    /// `model.xgb.json`: XGBoost's JSON model (see the module docs).
    pub fn to_json(&self, p: &Prepared) -> Vec<u8> {
        let d = p.d();
        let rounds = self.trees.len() / self.groups.max(1);
        let (num_class, objective) = match self.objective {
            XgbObjective::MultiSoftprob | XgbObjective::MultiSoftmax => (
                self.groups,
                json!({"name": self.objective.as_str(), "softmax_multiclass_param": {"num_class": self.groups.to_string()}}),
            ),
            _ => (
                0,
                json!({"name": self.objective.as_str(), "reg_loss_param": {"scale_pos_weight": "1"}}),
            ),
        };
        // XGBoost keeps `base_score` in the objective's output space: a probability for
        // binary:logistic, margins for softmax, values for regression.
        let base_score: Vec<String> = match self.objective {
            XgbObjective::BinaryLogistic => {
                vec![format!("{:E}", 1.0 / (1.0 + (-self.base_margin[0]).exp()))]
            }
            _ => self.base_margin.iter().map(|v| format!("{v:E}")).collect(),
        };
        // XGBoost refuses feature names holding `[`, `]` or `<`, and duplicates: those are in
        // `ccr_feature_columns` only.
        let names_ok = p.features.iter().all(|f| !f.contains(['[', ']', '<']))
            && p.features
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                == d;
        let doc = json!({
            "learner": {
                "attributes": {
                    "ccr_format": "ccr-xgb/2",
                    "ccr_classes": Value::from(p.classes.clone()).to_string(),
                    "ccr_feature_columns": Value::from(p.features.clone()).to_string(),
                },
                "feature_names": if names_ok { p.features.clone() } else { Vec::new() },
                "feature_types": [],
                "gradient_booster": {
                    "model": {
                        "cats": {"enc": [], "feature_segments": [], "sorted_idx": []},
                        "gbtree_model_param": {
                            "num_parallel_tree": "1",
                            "num_trees": self.trees.len().to_string(),
                        },
                        "iteration_indptr": (0..=rounds).map(|r| r * self.groups).collect::<Vec<_>>(),
                        "tree_info": (0..self.trees.len()).map(|t| t % self.groups).collect::<Vec<_>>(),
                        "trees": self.trees.iter().enumerate().map(|(i, t)| t.to_xgboost_json(i, d)).collect::<Vec<_>>(),
                    },
                    "name": "gbtree",
                },
                "learner_model_param": {
                    "base_score": format!("[{}]", base_score.join(",")),
                    "boost_from_average": "1",
                    "num_class": num_class.to_string(),
                    "num_feature": d.to_string(),
                    "num_target": "1",
                },
                "objective": objective,
            },
            "version": [3, 1, 0],
        });
        serde_json::to_vec(&doc).unwrap_or_default()
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

//! Step 6, train: features and labels from the joined table, the split, the model fitted (Burn,
//! plain or DP-SGD within the plan; or gradient-boosted trees), the held-out metrics, and the
//! model files the contract allows. The learning itself is [`crate::learn`]'s.

use std::time::Instant;

use ccr_policy::contract::OutputFormat;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::JobError;
use super::join::Joined;
use super::progress::Progress;
use crate::init::Abort;
use crate::learn::dp::{DpSpent, plan_dp};
use crate::learn::export::{onnx, safetensors};
use crate::learn::metrics::{
    accuracy, argmax_rows, averaged, classification_report, confusion_matrix, mae, mse, per_class,
    precision_recall_curve, r2, roc_auc, roc_auc_ovr, roc_curve, softmax_rows,
};
use crate::learn::{self, Prepared, Split, xgb};
use crate::pipeline::{Average, Metric, MetricName, ModelName, MultiClass, TaskType, TrainConfig};

/// What training gives the seal step.
#[derive(Debug)]
pub struct TrainOutput {
    /// `metrics.json`.
    pub metrics: Value,
    /// The model files, by name (`model.safetensors`, `model.onnx`, `model.xgb.json`).
    pub files: Vec<(String, Vec<u8>)>,
    /// DP runs: what was spent.
    pub dp: Option<DpSpent>,
}

/// What the training step reads besides the joined table.
pub struct TrainInputs<'a> {
    /// The train step's config.
    pub config: &'a TrainConfig,
    /// The join's identifier columns (never features).
    pub identifiers: &'a [String],
    /// A noise multiplier the contract fixes for a joined dataset (a floor).
    pub contract_noise: Option<f64>,
    /// The model files the output may carry.
    pub formats: &'a [OutputFormat],
    /// The consumer's base model (safetensors).
    pub base_model: Option<&'a [u8]>,
    /// Set by SIGTERM: training stops after the current epoch.
    pub abort: &'a Abort,
}

/// What a fitted model gives the metrics and the output.
struct Fitted {
    /// Held-out outputs, row-major `[n, k]` (logits or margins for classification).
    out: Vec<f32>,
    k: usize,
    epochs: Vec<learn::EpochLog>,
    dp: Option<DpSpent>,
    /// `model_config.eval_metric` on the validation (else test) split.
    eval: Option<Value>,
    files: Vec<(String, Vec<u8>)>,
}

/// Trains and evaluates on the joined table.
///
/// # Errors
/// [`JobError::Train`], [`JobError::Config`] (a format the contract does not allow),
/// [`JobError::Aborted`].
pub fn train(joined: Joined, inp: &TrainInputs<'_>) -> Result<TrainOutput, JobError> {
    let tc = inp.config;
    // The joined data is dropped once the features are built from it.
    let (p, sp, pre) = match joined {
        Joined::Table(t) => {
            let (p, sp, pre) = learn::features::prepare(&t, tc, inp.identifiers)?;
            (p, sp, Some(pre))
        }
        Joined::File(name, bytes) => {
            let p = learn::serialized::prepare(&bytes, &name, tc)?;
            let sp = learn::split(&p.y, tc);
            (p, sp, None)
        }
        Joined::Files(folder, files) => {
            let p = learn::directory::prepare(&files, &folder, tc)?;
            let sp = learn::split(&p.y, tc);
            (p, sp, None)
        }
        Joined::Texts(_) => {
            return Err(JobError::Config(
                "text datasets are trained on by LLM_Finetune".into(),
            ));
        }
    };
    info!(
        rows = p.n(),
        features = p.d(),
        train = sp.train.len(),
        val = sp.val.len(),
        test = sp.test.len(),
        "data prepared"
    );
    let mut fitted = match tc.model_config.name {
        ModelName::XgBoost => fit_xgb(&p, &sp, inp)?,
        _ => fit_net(&p, &sp, inp)?,
    };
    if let Some(pre) = &pre {
        // What was fitted on the training split, so that the consumer can prepare new rows.
        let json = serde_json::to_vec_pretty(pre)
            .map_err(|e| JobError::Config(format!("preprocessing.json: {e}")))?;
        fitted.files.push(("preprocessing.json".to_string(), json));
    }
    let metrics = metrics(&p, &sp, tc, &fitted);
    Ok(TrainOutput {
        metrics,
        files: fitted.files,
        dp: fitted.dp,
    })
}

/// A trained model's outputs for some rows (`[rows, k]` row-major).
type Outputs<'a> = Box<dyn Fn(&[usize]) -> Vec<f32> + 'a>;

fn fit_xgb(p: &Prepared, sp: &Split, inp: &TrainInputs<'_>) -> Result<Fitted, JobError> {
    let tc = inp.config;
    if !inp.formats.contains(&OutputFormat::XgboostJson) {
        return Err(JobError::Config(
            "Train_XGB writes model.xgb.json, and the contract's allowedModelFormats does not list XGBoostJSON".into(),
        ));
    }
    let t0 = Instant::now();
    // The metric XGBoost's evals would print: on the validation split, else the test split.
    let eval_rows = if sp.val.is_empty() { &sp.test } else { &sp.val };
    let eval_split = if sp.val.is_empty() { "test" } else { "val" };
    let obj = xgb::objective(tc);
    let k = xgb::outputs_of(obj, p);
    let (predict, dp, model): (Outputs<'_>, _, _) = if tc.is_private {
        let (b, spent) = learn::xgb_dp::train(p, sp, tc, inp.contract_noise)?;
        info!(
            trees = b.trees.len(),
            epsilon = spent.epsilon,
            delta = spent.delta,
            noise_multiplier = spent.plan.noise_multiplier,
            seconds = t0.elapsed().as_secs_f64(),
            "Train_XGB (DP-TR Newton) done: privacy spent"
        );
        let doc = learn::xgb_dp::model_json(&b, p, obj);
        let f = move |idx: &[usize]| learn::xgb_dp::outputs(&b, p, idx, obj);
        (Box::new(f), Some(spent), doc)
    } else {
        let m = xgb::train(p, sp, tc)?;
        info!(objective = %m.objective.as_str(), trees = m.trees.len(), seconds = t0.elapsed().as_secs_f64(), "Train_XGB done");
        let doc = m.to_json(p);
        (Box::new(move |idx: &[usize]| m.predict(p, idx)), None, doc)
    };
    let out = predict(&sp.test);
    let eval = tc.model_config.eval_metric.map(|metric| {
        let labels: Vec<f32> = eval_rows.iter().map(|&i| p.y[i]).collect();
        let value = if sp.val.is_empty() {
            xgb::eval_metric(metric, &out, &labels, k)
        } else {
            xgb::eval_metric(metric, &predict(eval_rows), &labels, k)
        };
        json!({"metric": metric.as_str(), "split": eval_split, "value": value})
    });
    Ok(Fitted {
        out,
        k,
        epochs: Vec::new(),
        dp,
        eval,
        files: vec![("model.xgb.json".to_string(), model)],
    })
}

fn fit_net(p: &Prepared, sp: &Split, inp: &TrainInputs<'_>) -> Result<Fitted, JobError> {
    let tc = inp.config;
    let dp = if tc.is_private {
        let plan = plan_dp(tc, sp.train.len(), inp.contract_noise)?;
        plan.log("DP-SGD plan");
        Some(plan)
    } else {
        None
    };
    let progress = Progress::new(tc.total_epochs);
    let trained = learn::train(p, sp, tc, dp.as_ref(), inp.base_model, |e| {
        progress.epoch(e);
        !inp.abort.requested()
    })?
    .ok_or(JobError::Aborted { step: "train" })?;
    progress.finish();
    if let Some(s) = &trained.dp {
        info!(
            epsilon = s.epsilon,
            delta = s.delta,
            steps = s.steps,
            "DP-SGD done: privacy spent"
        );
    }
    let device = learn::device();
    let xte = trained.scaler.transform(p, &sp.test);
    let out = learn::predict(&trained.net, &device, &xte, sp.test.len(), p.d())?;
    let (out, k) = two_class_logits(out, trained.outputs, tc);
    let mut files = Vec::new();
    if inp.formats.contains(&OutputFormat::Safetensors) {
        files.push((
            "model.safetensors".to_string(),
            safetensors::to_safetensors(&trained, p, tc)?,
        ));
    }
    if inp.formats.contains(&OutputFormat::Onnx) {
        let meta = vec![
            (
                "feature_columns".to_string(),
                serde_json::to_string(&p.features).unwrap_or_default(),
            ),
            (
                "classes".to_string(),
                serde_json::to_string(&p.classes).unwrap_or_default(),
            ),
            ("task".to_string(), tc.task_type.to_string()),
            ("model".to_string(), tc.model_config.name.to_string()),
        ];
        let binary = tc.loss_config.as_ref().is_some_and(|l| l.class.binary());
        let head = match tc.task_type {
            TaskType::Classification if !binary => onnx::Head::Softmax,
            _ => onnx::Head::None,
        };
        let bytes = onnx::export(&trained.net, &trained.scaler, head, meta)
            .map_err(|e| learn::TrainError::Data(e.to_string()))?;
        files.push(("model.onnx".to_string(), bytes));
    }
    Ok(Fitted {
        out,
        k,
        epochs: trained.epochs,
        dp: trained.dp,
        eval: None,
        files,
    })
}

/// A binary cross-entropy model's one output per sample (a probability, or a logit) as the
/// logits of two classes `[0, logit]` (softmax gives back `[1 − p, p]`), so that every metric
/// reads a classifier's outputs one way.
fn two_class_logits(out: Vec<f32>, k: usize, tc: &TrainConfig) -> (Vec<f32>, usize) {
    let Some(class) = tc
        .loss_config
        .as_ref()
        .map(|l| l.class)
        .filter(|c| c.binary())
    else {
        return (out, k);
    };
    let logits = class == crate::pipeline::LossClass::BceWithLogitsLoss;
    let two = out
        .iter()
        .flat_map(|&v| {
            let z = if logits {
                v
            } else {
                let p = v.clamp(1e-7, 1.0 - 1e-7);
                (p / (1.0 - p)).ln()
            };
            [0.0, z]
        })
        .collect();
    (two, 2)
}

/// `metrics.json`: the held-out metrics the pipeline asks for, the data's shape, the epochs,
/// what DP spent, and (when the pipeline asks) the held-out predictions.
fn metrics(p: &Prepared, sp: &Split, tc: &TrainConfig, fitted: &Fitted) -> Value {
    let labels: Vec<f32> = sp.test.iter().map(|&i| p.y[i]).collect();
    let classification = tc.task_type == TaskType::Classification;
    let (out, k) = (&fitted.out, fitted.k);
    let held_out = HeldOut {
        preds: if classification {
            argmax_rows(out, k)
        } else {
            out.clone()
        },
        // Both the networks and the boosters give logits (margins): softmax gives probabilities.
        proba: if classification {
            softmax_rows(out, k)
        } else {
            Vec::new()
        },
        labels,
        k,
        classes: &p.classes,
    };
    let mut test = serde_json::Map::new();
    test.insert("n".into(), json!(sp.test.len()));
    for m in &tc.metrics {
        if m.name.is_classification() != classification {
            warn!(metric = %m.key, "metric does not apply to this task; skipped");
            continue;
        }
        match held_out.metric(m) {
            Ok(v) => {
                test.insert(m.key.clone(), v);
            }
            Err(reason) => warn!(metric = %m.key, reason = %reason, "metric skipped"),
        }
    }
    let test_metrics = Value::Object(test.clone());
    info!(metrics = %test_metrics, "held-out metrics");
    // The curve behind a binary ROC AUC, for its chart (report::charts): at most
    // ROC_CURVE_POINTS, so that a test split of millions of rows does not put millions of
    // points in metrics.json, run.json and the chart.
    if held_out.k == 2 && tc.metrics.iter().any(|m| m.name == MetricName::RocAuc) {
        let scores: Vec<f64> = held_out.proba.chunks(2).map(|r| r[1]).collect();
        let (fpr, tpr) = roc_curve(&scores, &held_out.labels);
        let keep = thinned(fpr.len(), ROC_CURVE_POINTS);
        test.insert(
            "roc_curve".into(),
            json!({"fpr": keep.iter().map(|&i| fpr[i]).collect::<Vec<_>>(),
                   "tpr": keep.iter().map(|&i| tpr[i]).collect::<Vec<_>>()}),
        );
    }
    let mut metrics = json!({
        "format": "ccr-metrics/1",
        "task": tc.task_type,
        "model": tc.model_config.name,
        "features": p.features,
        "classes": p.classes,
        "rows": {"total": p.n(), "train": sp.train.len(), "val": sp.val.len(), "test": sp.test.len()},
        "test": Value::Object(test),
        "epochs": fitted.epochs,
    });
    if let Some(s) = &fitted.dp {
        let key = if tc.model_config.name == ModelName::XgBoost {
            "dp_trees"
        } else {
            "dp_sgd"
        };
        metrics[key] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    if let Some(e) = &fitted.eval {
        metrics["eval"] = e.clone();
    }
    if tc.export_test_predictions {
        let rows: Vec<Value> = sp
            .test
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                json!({
                    "id": p.ids.get(i).cloned().unwrap_or_else(|| i.to_string()),
                    "label": p.y[i],
                    "prediction": held_out.preds[j],
                    "output": out[j * k..(j + 1) * k],
                })
            })
            .collect();
        metrics["test_predictions"] = Value::Array(rows);
    }
    metrics
}

/// Most points of `test.roc_curve` in metrics.json.
pub const ROC_CURVE_POINTS: usize = 1000;

/// Indexes of at most `max` (at least 2) of `n` points, evenly spaced, the first and last
/// always among them.
fn thinned(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let max = max.max(2);
    (0..max).map(|j| j * (n - 1) / (max - 1)).collect()
}

/// The held-out split's predictions (class indices or values), probabilities `[n, k]`
/// (classification) and labels.
struct HeldOut<'a> {
    preds: Vec<f32>,
    proba: Vec<f64>,
    labels: Vec<f32>,
    k: usize,
    classes: &'a [String],
}

impl HeldOut<'_> {
    /// One metric's value, as scikit-learn computes it.
    fn metric(&self, m: &Metric) -> Result<Value, String> {
        let (preds, labels, k) = (&self.preds, &self.labels, self.k);
        let default_average = if k == 2 {
            Average::Binary
        } else {
            Average::Macro
        };
        let scores = || {
            averaged(
                &per_class(&confusion_matrix(preds, labels, k)),
                m.params.average.unwrap_or(default_average),
            )
        };
        let positive = || -> Result<Vec<f64>, String> {
            if k != 2 {
                return Err(format!("needs two classes, the labels have {k}"));
            }
            Ok(self.proba.chunks(2).map(|r| r[1]).collect())
        };
        Ok(match m.name {
            MetricName::Accuracy => json!(accuracy(preds, labels)),
            MetricName::Precision => json!(scores()?.precision),
            MetricName::Recall => json!(scores()?.recall),
            MetricName::F1Score => json!(scores()?.f1),
            MetricName::RocAuc => match (k, m.params.multi_class) {
                (2, _) => json!(roc_auc(&positive()?, labels)),
                (_, Some(MultiClass::Ovr)) => json!(roc_auc_ovr(&self.proba, labels, k)),
                _ => return Err(format!("{k} classes need params.multi_class ovr")),
            },
            MetricName::ConfusionMatrix => json!(confusion_matrix(preds, labels, k)),
            MetricName::ClassificationReport => {
                classification_report(preds, labels, k, self.classes)
            }
            MetricName::PrecisionRecallCurve => {
                let (precision, recall, thresholds) = precision_recall_curve(&positive()?, labels);
                json!({"precision": precision, "recall": recall, "thresholds": thresholds})
            }
            MetricName::Mse => json!(mse(preds, labels)),
            MetricName::Mae => json!(mae(preds, labels)),
            MetricName::Rmse => json!(mse(preds, labels).sqrt()),
            MetricName::R2Score => json!(r2(preds, labels)),
        })
    }
}

#[cfg(test)]
mod roc_thinning_tests {
    use super::thinned;

    #[test]
    fn a_long_curve_is_thinned_to_at_most_max_points_with_both_ends() {
        assert_eq!(thinned(5, 1000), vec![0, 1, 2, 3, 4]);
        let k = thinned(200_001, 1000);
        assert_eq!(k.len(), 1000);
        assert_eq!((k[0], k[999]), (0, 200_000));
        assert!(k.windows(2).all(|w| w[0] < w[1]));
    }
}

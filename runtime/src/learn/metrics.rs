//! Metrics on the held-out split, as scikit-learn defines them (DEPA-Training's `eval_tools.py`
//! calls scikit-learn): accuracy, precision/recall/F1 with `average` binary, macro, micro or
//! weighted (`zero_division` 0), ROC AUC (binary, or one-vs-rest macro), the confusion matrix,
//! the classification report, the precision-recall curve; MSE, MAE, RMSE, R². Labels and
//! predictions are class indices (`[n]` f32) or values; scores are probabilities.

use serde::Serialize;

use crate::pipeline::Average;

/// Row-wise argmax of `[n, k]` outputs.
pub fn argmax_rows(out: &[f32], k: usize) -> Vec<f32> {
    out.chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                    if v > b.1 { (i, v) } else { b }
                })
                .0 as f32
        })
        .collect()
}

/// Counts of (true class, predicted class), `[k][k]`, rows the true classes. Entries outside
/// `0..k` are not counted.
pub fn confusion_matrix(pred: &[f32], labels: &[f32], k: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; k]; k];
    for (&p, &l) in pred.iter().zip(labels) {
        let (p, l) = (p as usize, l as usize);
        if p < k && l < k {
            m[l][p] += 1;
        }
    }
    m
}

/// Precision, recall, F1 and support of one class (or an average of them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    /// tp / (tp + fp); 0 when nothing was predicted as the class.
    pub precision: f64,
    /// tp / (tp + fn); 0 when the class is absent.
    pub recall: f64,
    /// 2 tp / (2 tp + fp + fn); 0 when all three are 0.
    #[serde(rename = "f1-score")]
    pub f1: f64,
    /// Rows whose true class it is.
    pub support: u64,
}

/// Per-class [`Scores`] from a confusion matrix, with `None` for a class that is neither a
/// true nor a predicted class (scikit-learn leaves such labels out of its averages).
pub fn per_class(cm: &[Vec<u64>]) -> Vec<Option<Scores>> {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (0..cm.len())
        .map(|c| {
            let tp = cm[c][c];
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = cm.iter().map(|r| r[c]).sum();
            (support + predicted > 0).then(|| Scores {
                precision: ratio(tp, predicted),
                recall: ratio(tp, support),
                f1: ratio(2 * tp, support + predicted),
                support,
            })
        })
        .collect()
}

/// Precision, recall and F1 combined as scikit-learn's `average` does (the support is the total).
///
/// # Errors
/// `average` binary with more than two classes.
pub fn averaged(per: &[Option<Scores>], average: Average) -> Result<Scores, String> {
    let total: u64 = per.iter().flatten().map(|s| s.support).sum();
    let present: Vec<&Scores> = per.iter().flatten().collect();
    let mean = |f: &dyn Fn(&Scores) -> f64, weighted: bool| {
        let w = |s: &Scores| if weighted { s.support as f64 } else { 1.0 };
        let den: f64 = present.iter().map(|s| w(s)).sum();
        if den == 0.0 {
            0.0
        } else {
            present.iter().map(|s| w(s) * f(s)).sum::<f64>() / den
        }
    };
    Ok(match average {
        Average::Binary => {
            if per.len() != 2 {
                return Err(format!(
                    "average binary needs two classes, the labels have {}",
                    per.len()
                ));
            }
            per[1].unwrap_or(Scores {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                support: 0,
            })
        }
        Average::Macro | Average::Weighted => {
            let weighted = average == Average::Weighted;
            Scores {
                precision: mean(&|s| s.precision, weighted),
                recall: mean(&|s| s.recall, weighted),
                f1: mean(&|s| s.f1, weighted),
                support: total,
            }
        }
        Average::Micro => {
            // Single-label classes: every wrong prediction is one false positive and one false
            // negative, so micro precision = recall = F1 = accuracy.
            let tp: f64 = present.iter().map(|s| s.recall * s.support as f64).sum();
            let a = if total == 0 { 0.0 } else { tp / total as f64 };
            Scores {
                precision: a,
                recall: a,
                f1: a,
                support: total,
            }
        }
    })
}

/// One-vs-rest ROC AUC averaged over the classes present (scikit-learn's `multi_class="ovr"`,
/// `average="macro"`), from `[n, k]` probabilities.
pub fn roc_auc_ovr(proba: &[f64], labels: &[f32], k: usize) -> Option<f64> {
    let mut aucs = Vec::new();
    for c in 0..k {
        let scores: Vec<f64> = proba.chunks(k).map(|r| r[c]).collect();
        let is_c: Vec<f32> = labels
            .iter()
            .map(|&l| if l as usize == c { 1.0 } else { 0.0 })
            .collect();
        aucs.push(roc_auc(&scores, &is_c)?);
    }
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

/// Row-wise softmax of `[n, k]` logits.
pub fn softmax_rows(out: &[f32], k: usize) -> Vec<f64> {
    let mut p = Vec::with_capacity(out.len());
    for r in out.chunks(k) {
        let m = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let e: Vec<f64> = r.iter().map(|&v| f64::from(v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        p.extend(e.iter().map(|v| v / s));
    }
    p
}

/// The precision-recall curve of binary labels and positive-class scores, as scikit-learn's
/// `precision_recall_curve` (no intermediate points dropped): `(precision, recall,
/// thresholds)`, thresholds increasing, recall decreasing, ending with precision 1 and recall 0.
pub fn precision_recall_curve(scores: &[f64], labels: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (tps, fps, mut thresholds) = cumulative_counts(scores, labels);
    let last = *tps.last().unwrap_or(&0);
    let mut precision: Vec<f64> = tps
        .iter()
        .zip(&fps)
        .map(|(&t, &f)| {
            if t + f == 0 {
                0.0
            } else {
                t as f64 / (t + f) as f64
            }
        })
        .collect();
    let mut recall: Vec<f64> = tps
        .iter()
        .map(|&t| {
            if last == 0 {
                1.0
            } else {
                t as f64 / last as f64
            }
        })
        .collect();
    precision.reverse();
    recall.reverse();
    thresholds.reverse();
    precision.push(1.0);
    recall.push(0.0);
    (precision, recall, thresholds)
}

/// The ROC curve of binary labels and positive-class scores, as scikit-learn's `roc_curve` with
/// `drop_intermediate=False`: `(fpr, tpr)`, one point per distinct score from the highest down,
/// after a first point (0, 0). A class absent from `labels` gives rates of 0 for it.
pub fn roc_curve(scores: &[f64], labels: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (tps, fps, _) = cumulative_counts(scores, labels);
    let pos = tps.last().copied().unwrap_or(0).max(1) as f64;
    let neg = fps.last().copied().unwrap_or(0).max(1) as f64;
    let fpr = std::iter::once(0.0)
        .chain(fps.iter().map(|&f| f as f64 / neg))
        .collect();
    let tpr = std::iter::once(0.0)
        .chain(tps.iter().map(|&t| t as f64 / pos))
        .collect();
    (fpr, tpr)
}

/// Scores from the highest down: at each distinct score, the true and false positives of the
/// threshold "score >= it" (label 1 is positive), and the score.
fn cumulative_counts(scores: &[f64], labels: &[f32]) -> (Vec<u64>, Vec<u64>, Vec<f64>) {
    let mut v: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(s, l)| (*s, *l == 1.0))
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tps, mut fps, mut thresholds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0u64, 0u64);
    for (i, &(s, pos)) in v.iter().enumerate() {
        if pos {
            tp += 1;
        } else {
            fp += 1;
        }
        if i + 1 == v.len() || v[i + 1].0 != s {
            tps.push(tp);
            fps.push(fp);
            thresholds.push(s);
        }
    }
    (tps, fps, thresholds)
}

/// scikit-learn's `classification_report(output_dict=True)`: per class present (keyed by
/// `classes[c]`, its label value) precision, recall, f1-score and support; `accuracy`; the
/// `macro avg` and `weighted avg`.
pub fn classification_report(
    preds: &[f32],
    labels: &[f32],
    k: usize,
    classes: &[String],
) -> serde_json::Value {
    let per = per_class(&confusion_matrix(preds, labels, k));
    let mut r = serde_json::Map::new();
    for (c, s) in per.iter().enumerate() {
        if let Some(s) = s {
            let name = classes.get(c).cloned().unwrap_or_else(|| c.to_string());
            r.insert(name, serde_json::json!(s));
        }
    }
    r.insert(
        "accuracy".into(),
        serde_json::json!(accuracy(preds, labels)),
    );
    for (key, avg) in [
        ("macro avg", Average::Macro),
        ("weighted avg", Average::Weighted),
    ] {
        if let Ok(s) = averaged(&per, avg) {
            r.insert(key.into(), serde_json::json!(s));
        }
    }
    serde_json::Value::Object(r)
}

/// Mean absolute error.
pub fn mae(pred: &[f32], labels: &[f32]) -> f64 {
    pred.iter()
        .zip(labels)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum::<f64>()
        / labels.len().max(1) as f64
}

/// R², `1 - SS_res / SS_tot`; with constant labels 1 for a perfect fit, else 0 (scikit-learn's
/// `force_finite`).
pub fn r2(pred: &[f32], labels: &[f32]) -> f64 {
    let n = labels.len().max(1) as f64;
    let mean = labels.iter().map(|&l| f64::from(l)).sum::<f64>() / n;
    let ss_tot: f64 = labels.iter().map(|&l| (f64::from(l) - mean).powi(2)).sum();
    let ss_res: f64 = pred
        .iter()
        .zip(labels)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    match (ss_tot == 0.0, ss_res == 0.0) {
        (true, true) => 1.0,
        (true, false) => 0.0,
        _ => 1.0 - ss_res / ss_tot,
    }
}

/// Fraction of equal entries.
pub fn accuracy(pred: &[f32], labels: &[f32]) -> f64 {
    let ok = pred.iter().zip(labels).filter(|(a, b)| a == b).count();
    ok as f64 / labels.len().max(1) as f64
}

/// Mean squared error.
pub fn mse(pred: &[f32], labels: &[f32]) -> f64 {
    pred.iter()
        .zip(labels)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum::<f64>()
        / labels.len().max(1) as f64
}

/// ROC AUC for binary labels (0/1) and scores, with ties counted half (Mann–Whitney U).
pub fn roc_auc(scores: &[f64], labels: &[f32]) -> Option<f64> {
    let mut v: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(s, l)| (*s, *l == 1.0))
        .collect();
    let pos = v.iter().filter(|x| x.1).count();
    let neg = v.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0; // ranks are 1-based
        rank_sum += avg_rank * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_matches_hand_computed_values() {
        // Binary: tp 2, fp 1, fn 1 -> 4 / 6.
        let f1 = |pred: &[f32], labels: &[f32], k: usize, avg: Average| {
            averaged(&per_class(&confusion_matrix(pred, labels, k)), avg)
                .unwrap()
                .f1
        };
        let f = f1(
            &[1.0, 1.0, 1.0, 0.0, 0.0],
            &[1.0, 1.0, 0.0, 1.0, 0.0],
            2,
            Average::Binary,
        );
        assert!((f - 4.0 / 6.0).abs() < 1e-12, "{f}");
        // Three classes: per-class F1 1, 1/2, 0 -> macro 1/2.
        let f = f1(
            &[0.0, 1.0, 1.0, 2.0],
            &[0.0, 1.0, 2.0, 1.0],
            3,
            Average::Macro,
        );
        assert!((f - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-12, "{f}");
    }

    #[test]
    fn roc_auc_matches_hand_computed_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[0.0, 1.0]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.6], &[1.0, 1.0]), None);
    }
}

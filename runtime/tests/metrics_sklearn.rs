//! The held-out metrics against scikit-learn's definitions (what DEPA-Training's
//! `eval_tools.py` calls), on fixed inputs: tests/py/metrics_check.py computes scikit-learn's
//! values on the same labels, predictions and probabilities.

mod common;

use ccr_runtime::learn::metrics::{
    accuracy, averaged, classification_report, confusion_matrix, mae, mse, per_class,
    precision_recall_curve, r2, roc_auc, roc_auc_ovr, roc_curve, softmax_rows,
};
use ccr_runtime::pipeline::Average;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// `n` rows of `k` classes: labels, logits that lean to the label (so metrics are not trivial),
/// the argmax predictions and the softmax probabilities. Class `k - 1` is never predicted
/// in the multi-class case (a zero-division class).
fn classes(n: usize, k: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut labels = Vec::new();
    let mut logits = Vec::new();
    for _ in 0..n {
        let y = rng.gen_range(0..k);
        labels.push(y as f32);
        for c in 0..k {
            let lean = if c == y { 1.0 } else { 0.0 };
            let never = if k > 2 && c == k - 1 { -50.0 } else { 0.0 };
            // Coarse values make ties in the scores, which the curves must handle.
            logits.push(((lean + rng.gen_range(-1.5f32..1.5)) * 4.0).round() / 4.0 + never);
        }
    }
    let proba = softmax_rows(&logits, k);
    let preds = proba
        .chunks(k)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0 as f32
        })
        .collect();
    (labels, preds, proba)
}

fn close(a: &Value, b: &Value, what: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12, "{what}: ccr {x}, scikit-learn {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                close(x, y, &format!("{what}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xk: Vec<_> = x.keys().collect();
            let mut yk: Vec<_> = y.keys().collect();
            xk.sort();
            yk.sort();
            assert_eq!(xk, yk, "{what}: keys");
            for k in x.keys() {
                close(&x[k], &y[k], &format!("{what}.{k}"));
            }
        }
        _ => panic!("{what}: ccr {a}, scikit-learn {b}"),
    }
}

fn ccr_side(labels: &[f32], preds: &[f32], proba: &[f64], k: usize) -> Value {
    let per = per_class(&confusion_matrix(preds, labels, k));
    let mut r = json!({
        "accuracy": accuracy(preds, labels),
        "confusion_matrix": confusion_matrix(preds, labels, k),
        "report": classification_report(preds, labels, k, &(0..k).map(|c| c.to_string()).collect::<Vec<_>>()),
    });
    let mut averages = vec![
        ("macro", Average::Macro),
        ("micro", Average::Micro),
        ("weighted", Average::Weighted),
    ];
    if k == 2 {
        averages.push(("binary", Average::Binary));
        let pos: Vec<f64> = proba.chunks(2).map(|r| r[1]).collect();
        r["roc_auc"] = json!(roc_auc(&pos, labels));
        let (p, rc, t) = precision_recall_curve(&pos, labels);
        r["pr_curve"] = json!([p, rc, t]);
        let (fpr, tpr) = roc_curve(&pos, labels);
        r["roc_curve"] = json!([fpr, tpr]);
    } else {
        r["roc_auc_ovr"] = json!(roc_auc_ovr(proba, labels, k));
    }
    for (name, a) in averages {
        let s = averaged(&per, a).unwrap();
        r[format!("precision_{name}")] = json!(s.precision);
        r[format!("recall_{name}")] = json!(s.recall);
        r[format!("f1_{name}")] = json!(s.f1);
    }
    r
}

#[test]
fn classification_and_regression_metrics_equal_scikit_learns() {
    if !common::python_with("sklearn, numpy") {
        return;
    }
    let (bl, bp, bpr) = classes(157, 2, 1);
    let (ml, mp, mpr) = classes(211, 5, 2);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let rl: Vec<f32> = (0..97).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
    let rp: Vec<f32> = rl
        .iter()
        .map(|y| y * 0.8 + rng.gen_range(-0.5f32..0.5))
        .collect();
    let rows = |p: &[f64], k: usize| p.chunks(k).map(<[f64]>::to_vec).collect::<Vec<_>>();
    let input = json!({
        "binary": {"labels": bl, "preds": bp, "proba": rows(&bpr, 2)},
        "multi": {"labels": ml, "preds": mp, "proba": rows(&mpr, 5)},
        "reg": {"labels": rl, "preds": rp},
    });
    let sk = common::python_json("python3", "tests/py/metrics_check.py", &[], &input);
    close(&ccr_side(&bl, &bp, &bpr, 2), &sk["binary"], "binary");
    close(&ccr_side(&ml, &mp, &mpr, 5), &sk["multi"], "multi");
    let reg = json!({"mse": mse(&rp, &rl), "mae": mae(&rp, &rl), "rmse": mse(&rp, &rl).sqrt(), "r2": r2(&rp, &rl)});
    close(&reg, &sk["reg"], "regression");
    // The inputs are not degenerate: the multi-class case has a class nobody predicts.
    assert_eq!(
        confusion_matrix(&mp, &ml, 5)
            .iter()
            .map(|r| r[4])
            .sum::<u64>(),
        0
    );
}

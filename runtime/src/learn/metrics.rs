//! Metrics on the held-out split: accuracy, ROC AUC (binary), F1 (binary or macro), MSE.

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

/// Softmax probability of class 1 for `[n, 2]` logits.
pub fn positive_scores(out: &[f32]) -> Vec<f64> {
    out.chunks(2)
        .map(|r| {
            let (a, b) = (f64::from(r[0]), f64::from(r[1]));
            1.0 / (1.0 + (a - b).exp())
        })
        .collect()
}

/// F1 score of class indices: for two classes, of class 1; for more, the mean over classes
/// (macro F1). A class never predicted nor present adds nothing to the mean.
pub fn f1(pred: &[f32], labels: &[f32], classes: usize) -> f64 {
    let f1_of = |c: f32| {
        let tp = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == c && **l == c)
            .count() as f64;
        let fp = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == c && **l != c)
            .count() as f64;
        let fn_ = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p != c && **l == c)
            .count() as f64;
        (tp + fp + fn_ > 0.0).then(|| 2.0 * tp / (2.0 * tp + fp + fn_))
    };
    if classes == 2 {
        return f1_of(1.0).unwrap_or(0.0);
    }
    let per: Vec<f64> = (0..classes).filter_map(|c| f1_of(c as f32)).collect();
    per.iter().sum::<f64>() / per.len().max(1) as f64
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
        .map(|(a, b)| f64::from(a - b).powi(2))
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
        let f = f1(&[1.0, 1.0, 1.0, 0.0, 0.0], &[1.0, 1.0, 0.0, 1.0, 0.0], 2);
        assert!((f - 4.0 / 6.0).abs() < 1e-12, "{f}");
        // Three classes: per-class F1 1, 1/2, 0 -> macro 1/2.
        let f = f1(&[0.0, 1.0, 1.0, 2.0], &[0.0, 1.0, 2.0, 1.0], 3);
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

//! Prepared data (features and labels, whichever kind of dataset they came from), the
//! train/validation/test split, and the feature scaler.
//!
//! The split is stratified by class when asked (per class: shuffle with the seed, take the
//! test share, then the validation share, the rest trains), and the scaler is fitted on the
//! training split only. Tables become [`Prepared`] in [`super::features`].

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::pipeline::{ScalerKind, TaskType, TrainConfig};

/// Prepared data: features, labels and row identifiers.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Feature names, in column order of `x`.
    pub features: Vec<String>,
    /// `[n, d]` row-major features (unscaled).
    pub x: Vec<f32>,
    /// Labels: class index (classification) or value (regression).
    pub y: Vec<f32>,
    /// Class label values (classification), ascending.
    pub classes: Vec<String>,
    /// Row identifiers (the first identifier column, else the row number).
    pub ids: Vec<String>,
    /// One sample's shape: `[d]` for table rows, `[C, H, W]` for images.
    pub sample_shape: Vec<usize>,
}

impl Prepared {
    /// Number of rows.
    pub fn n(&self) -> usize {
        self.y.len()
    }
    /// Number of features (a sample's values).
    pub fn d(&self) -> usize {
        self.sample_shape.iter().product()
    }
}

/// Row indices of the train, validation and test splits.
#[derive(Debug, Clone)]
pub struct Split {
    /// Training rows.
    pub train: Vec<usize>,
    /// Validation rows.
    pub val: Vec<usize>,
    /// Held-out test rows.
    pub test: Vec<usize>,
}

/// Splits rows by their labels `y`, stratified by class when `stratify` (classification), with
/// `random_state`.
pub fn split(y: &[f32], train_cfg: &TrainConfig) -> Split {
    let s = &train_cfg.dataset_config.splits;
    let mut rng = ChaCha8Rng::seed_from_u64(s.random_state);
    let groups: Vec<Vec<usize>> = if s.stratify && train_cfg.task_type == TaskType::Classification {
        let mut g: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, y) in y.iter().enumerate() {
            g.entry(*y as u32).or_default().push(i);
        }
        g.into_values().collect()
    } else {
        vec![(0..y.len()).collect()]
    };
    let mut out = Split {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
    };
    for mut g in groups {
        g.shuffle(&mut rng);
        let n = g.len();
        let total = s.train + s.val + s.test;
        let nt = ((n as f64) * s.test / total).round() as usize;
        let nv = ((n as f64) * s.val / total).round() as usize;
        out.test.extend_from_slice(&g[..nt.min(n)]);
        out.val.extend_from_slice(&g[nt.min(n)..(nt + nv).min(n)]);
        out.train.extend_from_slice(&g[(nt + nv).min(n)..]);
    }
    out.train.sort_unstable();
    out.val.sort_unstable();
    out.test.sort_unstable();
    out
}

/// A fitted scaler: `x' = (x - offset) / scale`.
#[derive(Debug, Clone)]
pub struct Scaler {
    /// Per-feature offset.
    pub offset: Vec<f32>,
    /// Per-feature scale (never 0).
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Fits `kind` on the rows `idx` of `p`.
    pub fn fit(kind: ScalerKind, p: &Prepared, idx: &[usize]) -> Self {
        let d = p.d();
        let col = |j: usize| idx.iter().map(move |&i| p.x[i * d + j] as f64);
        let mut offset = vec![0f32; d];
        let mut scale = vec![1f32; d];
        for j in 0..d {
            let n = idx.len().max(1) as f64;
            let (o, s) = match kind {
                ScalerKind::Standard => {
                    let mean = col(j).sum::<f64>() / n;
                    let var = col(j).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    (mean, var.sqrt())
                }
                ScalerKind::MinMax => {
                    let lo = col(j).fold(f64::INFINITY, f64::min);
                    let hi = col(j).fold(f64::NEG_INFINITY, f64::max);
                    (lo, hi - lo)
                }
                ScalerKind::MaxAbs => (0.0, col(j).fold(0.0, |m, v| f64::max(m, v.abs()))),
                ScalerKind::Robust => {
                    let mut v: Vec<f64> = col(j).collect();
                    v.sort_by(f64::total_cmp);
                    let q = |p: f64| percentile(&v, p);
                    (q(50.0), q(75.0) - q(25.0))
                }
                ScalerKind::Identity => (0.0, 1.0),
            };
            offset[j] = o as f32;
            scale[j] = if s.is_finite() && s > 1e-12 {
                s as f32
            } else {
                1.0
            };
        }
        Self { offset, scale }
    }

    /// Scaled rows `idx` of `p`, row-major.
    pub fn transform(&self, p: &Prepared, idx: &[usize]) -> Vec<f32> {
        let d = p.d();
        let mut out = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            for j in 0..d {
                out.push((p.x[i * d + j] - self.offset[j]) / self.scale[j]);
            }
        }
        out
    }
}

/// numpy's `percentile` (linear interpolation) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let h = (sorted.len() - 1) as f64 * p / 100.0;
    let (lo, frac) = (h.floor() as usize, h - h.floor());
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_scaler_uses_training_rows_only() {
        let p = Prepared {
            features: vec!["a".into()],
            x: vec![1.0, 3.0, 100.0],
            y: vec![0.0, 1.0, 0.0],
            classes: vec!["0".into(), "1".into()],
            ids: vec!["0".into(), "1".into(), "2".into()],
            sample_shape: vec![1],
        };
        let s = Scaler::fit(ScalerKind::Standard, &p, &[0, 1]);
        assert_eq!(s.offset, vec![2.0]);
        assert_eq!(s.scale, vec![1.0]);
    }

    #[test]
    fn robust_scaler_is_the_median_and_interquartile_range() {
        // numpy: percentile([1, 2, 4, 10], [25, 50, 75]) = [1.75, 3.0, 5.5]
        let p = Prepared {
            features: vec!["a".into()],
            x: vec![4.0, 1.0, 10.0, 2.0],
            y: vec![0.0; 4],
            classes: vec![],
            ids: vec![],
            sample_shape: vec![1],
        };
        let s = Scaler::fit(ScalerKind::Robust, &p, &[0, 1, 2, 3]);
        assert_eq!(s.offset, vec![3.0]);
        assert_eq!(s.scale, vec![3.75]);
    }
}

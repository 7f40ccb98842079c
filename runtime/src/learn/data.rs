//! Features and labels from the joined table, the train/validation/test split, and the
//! feature scaler.
//!
//! Rows with a missing feature or label are dropped (`missing_strategy` `drop`, the default) or
//! the cell takes `fill_value` (`fill`). Classification labels are mapped to class
//! indices in ascending order of their value (`classes` in the output). The split is
//! stratified by class when asked (per class: shuffle with the seed, take the test share, then
//! the validation share, the rest trains), and the scaler is fitted on the training split only.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::TrainError;
use crate::pipeline::{MissingStrategy, ScalerKind, TaskType, TrainConfig};
use crate::tabular::{Cell, Table};

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

/// Builds features and labels from the joined table.
///
/// # Errors
/// [`TrainError`] naming the column.
pub fn prepare(
    t: &Table,
    cfg: &TrainConfig,
    identifiers: &[String],
) -> Result<Prepared, TrainError> {
    let dc = &cfg.dataset_config;
    let Some(target_name) = &dc.target_variable else {
        return Err(TrainError::Data(
            "dataset_config.target_variable: required for tabular data".into(),
        ));
    };
    let target = t.column(target_name).ok_or_else(|| TrainError::Column {
        field: "dataset_config.target_variable",
        column: target_name.clone(),
        available: t.columns.join(", "),
    })?;
    // DEPA's `missing_strategy` `fill` puts `fill_value` in every missing cell, the label's too.
    let fill =
        (dc.missing_strategy == Some(MissingStrategy::Fill)).then(|| dc.fill_value.unwrap_or(0.0));
    let excluded = |c: &String| {
        c == target_name
            || identifiers.contains(c)
            || identifiers.iter().any(|i| c.starts_with(&format!("{i}:")))
    };
    let features: Vec<String> = match &dc.feature_columns {
        Some(f) => f.clone(),
        None => t.columns.iter().filter(|c| !excluded(c)).cloned().collect(),
    };
    let fidx = features
        .iter()
        .map(|c| {
            t.column(c).ok_or_else(|| TrainError::Column {
                field: "dataset_config.feature_columns",
                column: c.clone(),
                available: t.columns.join(", "),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if fidx.is_empty() {
        return Err(TrainError::Data("no feature columns".into()));
    }
    let id_col = identifiers.iter().find_map(|i| t.column(i));
    let classification = cfg.task_type == TaskType::Classification;
    let mut class_values: Vec<(f64, String)> = Vec::new();
    if classification {
        let mut seen = BTreeMap::new();
        for r in &t.rows {
            if let Some(v) = r[target].as_f64() {
                seen.insert(ordered(v), (v, r[target].to_text()));
            } else if let Cell::Text(s) = &r[target] {
                return Err(TrainError::Data(format!(
                    "target `{target_name}` holds text (`{s}`); labels must be numbers"
                )));
            } else if let Some(f) = fill {
                seen.insert(ordered(f), (f, format!("{f}")));
            }
        }
        class_values = seen.into_values().collect();
        if class_values.len() < 2 {
            return Err(TrainError::Data("fewer than two classes".into()));
        }
    }
    let mut p = Prepared {
        sample_shape: vec![features.len()],
        features,
        x: Vec::new(),
        y: Vec::new(),
        classes: class_values.iter().map(|c| c.1.clone()).collect(),
        ids: Vec::new(),
    };
    'rows: for (ri, r) in t.rows.iter().enumerate() {
        let Some(yv) = r[target].as_f64().or(fill) else {
            continue;
        };
        let mut xs = Vec::with_capacity(fidx.len());
        for (k, &i) in fidx.iter().enumerate() {
            match (&r[i], fill) {
                (Cell::Num(v), _) => xs.push(*v as f32),
                (Cell::Null, Some(f)) => xs.push(f as f32),
                (Cell::Null, None) => continue 'rows,
                (Cell::Text(_), _) => {
                    return Err(TrainError::NotNumeric {
                        column: p.features[k].clone(),
                        row: ri,
                    });
                }
            }
        }
        p.x.extend(xs);
        p.y.push(if classification {
            class_values.iter().position(|c| c.0 == yv).unwrap_or(0) as f32
        } else {
            yv as f32
        });
        p.ids
            .push(id_col.map_or_else(|| ri.to_string(), |c| r[c].to_text()));
    }
    if p.n() < 10 {
        return Err(TrainError::Data(format!("only {} complete rows", p.n())));
    }
    Ok(p)
}

fn ordered(v: f64) -> u64 {
    // Labels are small integers in practice; order by value through a monotone key.
    let b = v.to_bits();
    if v.is_sign_negative() {
        !b
    } else {
        b | (1 << 63)
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

/// Splits rows, stratified by class when `stratify` (classification), with `seed`.
pub fn split(p: &Prepared, train_cfg: &TrainConfig) -> Split {
    let s = &train_cfg.dataset_config.splits;
    let mut rng = ChaCha8Rng::seed_from_u64(s.random_state);
    let groups: Vec<Vec<usize>> = if s.stratify && train_cfg.task_type == TaskType::Classification {
        let mut g: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, y) in p.y.iter().enumerate() {
            g.entry(*y as u32).or_default().push(i);
        }
        g.into_values().collect()
    } else {
        vec![(0..p.n()).collect()]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_class_indices_in_value_order() {
        let csv =
            "id,f,y\na,1,7\nb,2,3\nc,3,7\nd,4,-1\ne,5,3\nf,6,7\ng,7,3\nh,8,-1\ni,9,7\nj,10,3\n";
        let t = crate::tabular::parse_csv("d", "f.csv", csv.as_bytes()).unwrap();
        let cfg: TrainConfig = serde_json::from_value(serde_json::json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "LogisticRegression"}
        }))
        .unwrap();
        let p = prepare(&t, &cfg, &["id".to_string()]).unwrap();
        assert_eq!(p.classes, vec!["-1", "3", "7"]);
        assert_eq!(p.y, vec![2.0, 1.0, 2.0, 0.0, 1.0, 2.0, 1.0, 0.0, 2.0, 1.0]);
        assert_eq!(
            p.features,
            vec!["f"],
            "identifiers and the target are not features"
        );
        assert_eq!(p.ids[3], "d");
    }

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
}

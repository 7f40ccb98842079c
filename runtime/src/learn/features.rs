//! Features and labels from the joined Arrow table, as DEPA's users expect scikit-learn to
//! prepare them: missing values, categorical encoding, the split, and what is fitted kept for
//! the output (`preprocessing.json`).
//!
//! 1. **Columns.** Numeric columns (integers, floats, decimals, booleans) are read as `f32`;
//!    text columns (plain or dictionaries) are categorical. Other types (dates parsed by
//!    parquet, lists, …) are an error naming the column. Feature columns are `feature_columns`,
//!    else every column but the target and the identifiers (and their `:k` copies).
//! 2. **Labels.** Classification labels are numbers (classes in ascending order of value) or
//!    text (classes in sorted order, as scikit-learn's `LabelEncoder`); a row without a label is
//!    dropped (`fill`: it takes `fill_value`, as DEPA's `fillna`).
//! 3. **Missing values** (`missing_strategy`): `drop` (default) drops a row with a missing
//!    feature before the split; `fill` puts `fill_value` in it (text columns: its text, as
//!    pandas' `fillna(v).astype(str)`); `mean`, `median` and `most_frequent` are fitted on the
//!    training split only (scikit-learn's `SimpleImputer`; ties of `most_frequent` go to the
//!    smallest value), text columns always taking their most frequent value.
//! 4. **Split** ([`super::split`]): stratified by class when asked.
//! 5. **Categorical encoding** (`preprocessing.categorical_encoding`), categories learned on the
//!    training split only: `onehot` (a `0/1` column per category, named `{column}_{value}` as
//!    pandas' `get_dummies`), `ordinal` (the category's index in sorted order, as
//!    scikit-learn's `OrdinalEncoder`), or `auto` (default, DEPA's rule: one-hot when the column
//!    has at most `max(2, 1% of the rows)` categories, else ordinal). A category that the
//!    training split does not have is an error naming the column (`handle_unknown: "error"`,
//!    scikit-learn's default), or encodes as all zeros / `-1` (`"ignore"`).
//!
//! The scaler ([`super::Scaler`]) is fitted afterwards on the encoded training rows.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Int32Type};
use serde::Serialize;

use super::TrainError;
use super::data::{Prepared, Split, split};
use crate::pipeline::{CategoricalEncoding, HandleUnknown, MissingStrategy, TaskType, TrainConfig};
use crate::tabular::Table;
use crate::tabular::read::{is_numeric, is_text, kind_name};

/// A category code for a missing value.
const MISSING: u32 = u32::MAX;

/// One input column before encoding.
#[derive(Debug, Clone)]
enum Raw {
    /// Numbers, `NaN` where missing.
    Numeric(Vec<f32>),
    /// Text: each row's index into `values` (or [`MISSING`]).
    Categorical {
        values: Vec<String>,
        codes: Vec<u32>,
    },
}

/// How one input column becomes features (fitted on the training split).
#[derive(Debug, Clone, Serialize)]
pub struct ColumnTransform {
    /// The input column.
    pub column: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// The value put in a missing cell (a number, or a category), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impute: Option<serde_json::Value>,
    /// Categorical columns: `onehot` or `ordinal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// Categorical columns: the categories seen in the training split, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// The feature columns it gives, in order.
    pub outputs: Vec<String>,
}

/// What preprocessing fitted, for `preprocessing.json` in the output.
#[derive(Debug, Clone, Serialize)]
pub struct Preprocessing {
    /// `ccr-preprocessing/1`.
    pub format: &'static str,
    /// The missing-value strategy applied.
    pub missing_strategy: &'static str,
    /// Each input column, in feature order.
    pub columns: Vec<ColumnTransform>,
    /// The model's inputs: the encoded feature columns.
    pub feature_columns: Vec<String>,
    /// Class labels (classification), in class-index order.
    pub classes: Vec<String>,
}

/// Builds features and labels from the joined table, splits them, and encodes them (see the
/// module documentation). `identifiers` are never features.
///
/// # Errors
/// [`TrainError::Column`] for a configured column that is absent, [`TrainError::ColumnType`]
/// for a feature that is neither numbers nor text, [`TrainError::UnseenCategory`],
/// [`TrainError::Data`] (no target, text labels for regression, fewer than ten rows or two
/// classes).
pub fn prepare(
    t: &Table,
    cfg: &TrainConfig,
    identifiers: &[String],
) -> Result<(Prepared, Split, Preprocessing), TrainError> {
    let dc = &cfg.dataset_config;
    let Some(target_name) = &dc.target_variable else {
        return Err(TrainError::Data(
            "dataset_config.target_variable: required for tabular data".into(),
        ));
    };
    let columns = t.columns();
    let target = t.column(target_name).ok_or_else(|| TrainError::Column {
        field: "dataset_config.target_variable",
        column: target_name.clone(),
        available: columns.join(", "),
    })?;
    let strategy = dc.missing_strategy.unwrap_or(MissingStrategy::Drop);
    let fill = (strategy == MissingStrategy::Fill).then(|| dc.fill_value.unwrap_or(0.0));
    let excluded = |c: &String| {
        c == target_name
            || identifiers.contains(c)
            || identifiers.iter().any(|i| c.starts_with(&format!("{i}:")))
    };
    let names: Vec<String> = match &dc.feature_columns {
        Some(f) => f.clone(),
        None => columns.iter().filter(|c| !excluded(c)).cloned().collect(),
    };
    if names.is_empty() {
        return Err(TrainError::Data("no feature columns".into()));
    }
    let mut raw = Vec::with_capacity(names.len());
    for c in &names {
        let i = t.column(c).ok_or_else(|| TrainError::Column {
            field: "dataset_config.feature_columns",
            column: c.clone(),
            available: columns.join(", "),
        })?;
        raw.push(read_column(t, i, c)?);
    }
    let (mut y, classes) = labels(t, target, target_name, cfg.task_type, fill)?;
    // Rows kept: a label, and under `drop` every feature.
    let keep: Vec<usize> = (0..y.len())
        .filter(|&r| {
            !y[r].is_nan()
                && (strategy != MissingStrategy::Drop || raw.iter().all(|c| !is_missing(c, r)))
        })
        .collect();
    if keep.len() < 10 {
        return Err(TrainError::Data(format!(
            "only {} complete rows",
            keep.len()
        )));
    }
    if keep.len() != y.len() {
        y = keep.iter().map(|&r| y[r]).collect();
        for c in &mut raw {
            gather(c, &keep);
        }
    }
    let ids = if cfg.export_test_predictions {
        row_ids(t, identifiers, &keep)
    } else {
        Vec::new()
    };
    let sp = split(&y, cfg);
    let mut transforms = Vec::with_capacity(raw.len());
    for (c, name) in raw.iter_mut().zip(&names) {
        transforms.push(fit_column(c, name, &sp.train, strategy, fill, cfg)?);
    }
    let features: Vec<String> = transforms.iter().flat_map(|t| t.outputs.clone()).collect();
    let x = encode(
        &raw,
        &transforms,
        &names,
        &sp,
        cfg.dataset_config.handle_unknown(),
    )?;
    drop(raw);
    let p = Prepared {
        sample_shape: vec![features.len()],
        features: features.clone(),
        x,
        y,
        classes: classes.clone(),
        ids,
    };
    let pre = Preprocessing {
        format: "ccr-preprocessing/1",
        missing_strategy: strategy.as_str(),
        columns: transforms,
        feature_columns: features,
        classes,
    };
    Ok((p, sp, pre))
}

fn is_missing(c: &Raw, r: usize) -> bool {
    match c {
        Raw::Numeric(v) => v[r].is_nan(),
        Raw::Categorical { codes, .. } => codes[r] == MISSING,
    }
}

fn gather(c: &mut Raw, keep: &[usize]) {
    match c {
        Raw::Numeric(v) => *v = keep.iter().map(|&r| v[r]).collect(),
        Raw::Categorical { codes, .. } => *codes = keep.iter().map(|&r| codes[r]).collect(),
    }
}

/// One column of every batch as numbers or categories.
fn read_column(t: &Table, i: usize, name: &str) -> Result<Raw, TrainError> {
    let dt = t.schema.field(i).data_type();
    if is_numeric(dt) {
        let mut v = Vec::with_capacity(t.num_rows());
        for a in t.arrays(i) {
            let f = cast(a.as_ref(), &DataType::Float32)
                .map_err(|e| TrainError::Data(format!("column `{name}`: {e}")))?;
            let f = f.as_primitive::<Float32Type>();
            if f.null_count() == 0 {
                v.extend_from_slice(f.values());
            } else {
                v.extend(f.iter().map(|x| x.unwrap_or(f32::NAN)));
            }
        }
        Ok(Raw::Numeric(v))
    } else if is_text(dt) || dt == &DataType::Null {
        let (values, codes) = categories(t.arrays(i))
            .map_err(|e| TrainError::Data(format!("column `{name}`: {e}")))?;
        Ok(Raw::Categorical { values, codes })
    } else {
        Err(TrainError::ColumnType {
            column: name.into(),
            kind: kind_name(dt),
        })
    }
}

/// Text arrays as one dictionary: the distinct values (in order of appearance) and each row's
/// code.
fn categories<'a>(
    arrays: impl Iterator<Item = &'a ArrayRef>,
) -> Result<(Vec<String>, Vec<u32>), arrow::error::ArrowError> {
    let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut values: Vec<String> = Vec::new();
    let mut codes = Vec::new();
    for a in arrays {
        let d = cast(a.as_ref(), &dict_type)?;
        let d: &DictionaryArray<Int32Type> = d.as_dictionary();
        let local = d.values().as_string::<i32>();
        let map: Vec<u32> = (0..local.len())
            .map(|k| {
                let s = local.value(k);
                match index.get(s) {
                    Some(&c) => c,
                    None => {
                        let c = values.len() as u32;
                        index.insert(s.to_string(), c);
                        values.push(s.to_string());
                        c
                    }
                }
            })
            .collect();
        let keys = d.keys();
        codes.extend(keys.iter().map(|k| k.map_or(MISSING, |k| map[k as usize])));
    }
    Ok((values, codes))
}

/// Labels as class indices (classification) or values; `NaN` where missing (unless `fill`).
fn labels(
    t: &Table,
    target: usize,
    name: &str,
    task: TaskType,
    fill: Option<f64>,
) -> Result<(Vec<f32>, Vec<String>), TrainError> {
    match read_column(t, target, name)? {
        Raw::Numeric(mut v) => {
            if let Some(f) = fill {
                v.iter_mut()
                    .filter(|x| x.is_nan())
                    .for_each(|x| *x = f as f32);
            }
            if task != TaskType::Classification {
                return Ok((v, Vec::new()));
            }
            let mut distinct: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            distinct.sort_by(f32::total_cmp);
            distinct.dedup();
            check_classes(distinct.len())?;
            let y = v
                .iter()
                .map(|x| {
                    if x.is_nan() {
                        f32::NAN
                    } else {
                        distinct.partition_point(|d| d < x) as f32
                    }
                })
                .collect();
            Ok((y, distinct.iter().map(|&d| number_text(d)).collect()))
        }
        Raw::Categorical { values, mut codes } => {
            if task != TaskType::Classification {
                return Err(TrainError::Data(format!(
                    "target `{name}` holds text; a regression target must be numbers"
                )));
            }
            let mut values = values;
            if let Some(f) = fill {
                let text = number_text(f as f32);
                let c = values.iter().position(|v| *v == text).unwrap_or_else(|| {
                    values.push(text);
                    values.len() - 1
                }) as u32;
                codes
                    .iter_mut()
                    .filter(|c| **c == MISSING)
                    .for_each(|x| *x = c);
            }
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by(|&a, &b| values[a].cmp(&values[b]));
            let mut rank = vec![0u32; values.len()];
            for (r, &v) in order.iter().enumerate() {
                rank[v] = r as u32;
            }
            check_classes(values.len())?;
            let y = codes
                .iter()
                .map(|&c| {
                    if c == MISSING {
                        f32::NAN
                    } else {
                        rank[c as usize] as f32
                    }
                })
                .collect();
            Ok((y, order.into_iter().map(|i| values[i].clone()).collect()))
        }
    }
}

fn check_classes(n: usize) -> Result<(), TrainError> {
    if n < 2 {
        return Err(TrainError::Data("fewer than two classes".into()));
    }
    Ok(())
}

/// A number as pandas prints a label: integers without a fraction.
fn number_text(x: f32) -> String {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// The first identifier column's text per kept row (else the row number).
fn row_ids(t: &Table, identifiers: &[String], keep: &[usize]) -> Vec<String> {
    let Some(i) = identifiers.iter().find_map(|c| t.column(c)) else {
        return keep.iter().map(usize::to_string).collect();
    };
    let mut all: Vec<String> = Vec::with_capacity(t.num_rows());
    for a in t.arrays(i) {
        match cast(a.as_ref(), &DataType::Utf8) {
            Ok(s) => all.extend(
                s.as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string()),
            ),
            Err(_) => all.extend((0..a.len()).map(|_| String::new())),
        }
    }
    keep.iter().map(|&r| all[r].clone()).collect()
}

/// Fits one column's imputation and encoding on the training rows, and imputes it in place.
fn fit_column(
    c: &mut Raw,
    name: &str,
    train: &[usize],
    strategy: MissingStrategy,
    fill: Option<f64>,
    cfg: &TrainConfig,
) -> Result<ColumnTransform, TrainError> {
    match c {
        Raw::Numeric(v) => {
            let value = match strategy {
                MissingStrategy::Drop => None,
                MissingStrategy::Fill => fill.map(|f| f as f32),
                MissingStrategy::Mean | MissingStrategy::Median | MissingStrategy::MostFrequent => {
                    let mut seen: Vec<f32> = train
                        .iter()
                        .map(|&r| v[r])
                        .filter(|x| !x.is_nan())
                        .collect();
                    statistic(&mut seen, strategy)
                }
            };
            if let Some(f) = value {
                v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = f);
            } else if v.iter().any(|x| x.is_nan()) {
                return Err(TrainError::Data(format!(
                    "column `{name}` has no value in the training split to impute from"
                )));
            }
            Ok(ColumnTransform {
                column: name.into(),
                kind: "numeric",
                impute: value.map(|f| serde_json::json!(f)),
                encoding: None,
                categories: None,
                outputs: vec![name.into()],
            })
        }
        Raw::Categorical { values, codes } => {
            let impute = match strategy {
                MissingStrategy::Drop => None,
                MissingStrategy::Fill => {
                    let text = number_text(fill.unwrap_or(0.0) as f32);
                    Some(match values.iter().position(|v| *v == text) {
                        Some(k) => k as u32,
                        None => {
                            values.push(text);
                            (values.len() - 1) as u32
                        }
                    })
                }
                _ => most_frequent_code(values, codes, train),
            };
            if let Some(k) = impute {
                codes
                    .iter_mut()
                    .filter(|c| **c == MISSING)
                    .for_each(|c| *c = k);
            }
            let mut seen: Vec<u32> = train.iter().map(|&r| codes[r]).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.retain(|&c| c != MISSING);
            let mut categories: Vec<String> =
                seen.iter().map(|&c| values[c as usize].clone()).collect();
            categories.sort();
            let threshold = 2usize.max(train.len() / 100);
            let encoding = match cfg.dataset_config.categorical_encoding() {
                CategoricalEncoding::OneHot => "onehot",
                CategoricalEncoding::Ordinal => "ordinal",
                CategoricalEncoding::Auto if categories.len() <= threshold => "onehot",
                CategoricalEncoding::Auto => "ordinal",
            };
            let outputs = if encoding == "onehot" {
                categories.iter().map(|v| format!("{name}_{v}")).collect()
            } else {
                vec![format!("{name}_ord")]
            };
            Ok(ColumnTransform {
                column: name.into(),
                kind: "categorical",
                impute: impute.map(|k| serde_json::json!(values[k as usize])),
                encoding: Some(encoding),
                categories: Some(categories),
                outputs,
            })
        }
    }
}

/// Mean, median (numpy's: the mean of the middle two) or most frequent (ties: the smallest).
fn statistic(seen: &mut [f32], strategy: MissingStrategy) -> Option<f32> {
    if seen.is_empty() {
        return None;
    }
    Some(match strategy {
        MissingStrategy::Mean => {
            (seen.iter().map(|&x| f64::from(x)).sum::<f64>() / seen.len() as f64) as f32
        }
        MissingStrategy::Median => {
            seen.sort_by(f32::total_cmp);
            let n = seen.len();
            if n % 2 == 1 {
                seen[n / 2]
            } else {
                ((f64::from(seen[n / 2 - 1]) + f64::from(seen[n / 2])) / 2.0) as f32
            }
        }
        _ => {
            seen.sort_by(f32::total_cmp);
            let (mut best, mut best_n) = (seen[0], 0usize);
            let mut i = 0;
            while i < seen.len() {
                let j = seen[i..].partition_point(|x| *x == seen[i]) + i;
                if j - i > best_n {
                    (best, best_n) = (seen[i], j - i);
                }
                i = j;
            }
            best
        }
    })
}

/// The most frequent category among the training rows (ties: the smallest in sorted order).
fn most_frequent_code(values: &[String], codes: &[u32], train: &[usize]) -> Option<u32> {
    let mut counts = vec![0usize; values.len()];
    for &r in train {
        if codes[r] != MISSING {
            counts[codes[r] as usize] += 1;
        }
    }
    (0..values.len())
        .filter(|&k| counts[k] > 0)
        .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(values[b].cmp(&values[a])))
        .map(|k| k as u32)
}

/// Row-major features `[n, d]` of every row, encoded as fitted.
fn encode(
    raw: &[Raw],
    transforms: &[ColumnTransform],
    names: &[String],
    sp: &Split,
    handle_unknown: HandleUnknown,
) -> Result<Vec<f32>, TrainError> {
    let n = match raw.first() {
        Some(Raw::Numeric(v)) => v.len(),
        Some(Raw::Categorical { codes, .. }) => codes.len(),
        None => 0,
    };
    let d: usize = transforms.iter().map(|t| t.outputs.len()).sum();
    let mut x = vec![0f32; n * d];
    let mut offset = 0;
    for ((c, t), name) in raw.iter().zip(transforms).zip(names) {
        match c {
            Raw::Numeric(v) => {
                for (r, &value) in v.iter().enumerate() {
                    x[r * d + offset] = value;
                }
            }
            Raw::Categorical { values, codes } => {
                let cats = t.categories.as_deref().unwrap_or_default();
                // Each code's position among the training categories (None: unseen).
                let pos: Vec<Option<usize>> =
                    values.iter().map(|v| cats.binary_search(v).ok()).collect();
                let onehot = t.encoding == Some("onehot");
                let mut unseen = 0usize;
                for (r, &code) in codes.iter().enumerate() {
                    let p = if code == MISSING {
                        None
                    } else {
                        pos[code as usize]
                    };
                    match (p, onehot) {
                        (Some(k), true) => x[r * d + offset + k] = 1.0,
                        (Some(k), false) => x[r * d + offset] = k as f32,
                        (None, true) => unseen += 1,
                        (None, false) => {
                            unseen += 1;
                            x[r * d + offset] = -1.0;
                        }
                    }
                }
                if unseen > 0 && handle_unknown == HandleUnknown::Error {
                    let in_split = |set: &[usize]| {
                        set.iter()
                            .filter(|&&r| codes[r] == MISSING || pos[codes[r] as usize].is_none())
                            .count()
                    };
                    return Err(TrainError::UnseenCategory {
                        column: name.clone(),
                        val: in_split(&sp.val),
                        test: in_split(&sp.test),
                    });
                }
            }
        }
        offset += t.outputs.len();
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(csv: &str) -> Table {
        crate::tabular::read::read("d", "f.csv", csv.as_bytes(), &["id".to_string()]).unwrap()
    }

    fn cfg(extra: serde_json::Value) -> TrainConfig {
        let mut dc = serde_json::json!({"target_variable": "y",
            "splits": {"train": 0.5, "val": 0.0, "test": 0.5, "random_state": 1, "stratify": false}});
        for (k, v) in extra.as_object().unwrap() {
            dc[k] = v.clone();
        }
        serde_json::from_value(serde_json::json!({
            "dataset_config": dc,
            "model_config": {"name": "LogisticRegression"}
        }))
        .unwrap()
    }

    #[test]
    fn labels_map_to_class_indices_in_value_order_and_identifiers_are_not_features() {
        let csv =
            "id,f,y\na,1,7\nb,2,3\nc,3,7\nd,4,-1\ne,5,3\nf,6,7\ng,7,3\nh,8,-1\ni,9,7\nj,10,3\n";
        let mut c = cfg(serde_json::json!({}));
        c.export_test_predictions = true;
        let (p, _, pre) = prepare(&table(csv), &c, &["id".to_string()]).unwrap();
        assert_eq!(p.classes, vec!["-1", "3", "7"]);
        assert_eq!(p.y, vec![2.0, 1.0, 2.0, 0.0, 1.0, 2.0, 1.0, 0.0, 2.0, 1.0]);
        assert_eq!(p.features, vec!["f"]);
        assert_eq!(pre.feature_columns, vec!["f"]);
        assert_eq!(p.ids[3], "d");
    }

    #[test]
    fn text_labels_are_classes_in_sorted_order() {
        let mut csv = String::from("f,y\n");
        for i in 0..12 {
            csv.push_str(&format!("{i},{}\n", ["no", "yes", "maybe"][i % 3]));
        }
        let (p, _, _) = prepare(&table(&csv), &cfg(serde_json::json!({})), &[]).unwrap();
        assert_eq!(p.classes, vec!["maybe", "no", "yes"]);
        assert_eq!(&p.y[..3], &[1.0, 2.0, 0.0]);
    }

    /// 20 rows; `a` is missing in rows 0 and 1, `c` (categorical) in row 2.
    fn with_missing() -> String {
        let mut csv = String::from("a,c,y\n");
        for i in 0..20 {
            let a = if i < 2 {
                String::new()
            } else {
                (i % 7).to_string()
            };
            let c = if i == 2 {
                ""
            } else {
                ["red", "blue", "red", "green"][i % 4]
            };
            csv.push_str(&format!("{a},{c},{}\n", i % 2));
        }
        csv
    }

    #[test]
    fn missing_strategies_drop_fill_and_fit_on_the_training_split() {
        let t = table(&with_missing());
        let (p, _, _) = prepare(&t, &cfg(serde_json::json!({})), &[]).unwrap();
        assert_eq!(p.n(), 17, "drop: three incomplete rows");
        let (p, _, pre) = prepare(
            &t,
            &cfg(
                serde_json::json!({"missing_strategy": "fill", "fill_value": -5,
                "preprocessing": {"handle_unknown": "ignore"}}),
            ),
            &[],
        )
        .unwrap();
        assert_eq!(p.n(), 20);
        assert_eq!(p.x[0], -5.0);
        assert_eq!(pre.columns[1].impute.as_ref().unwrap(), "-5", "{pre:?}");
        for s in ["mean", "median", "most_frequent"] {
            let (p, sp, pre) = prepare(
                &t,
                &cfg(serde_json::json!({"missing_strategy": s, "preprocessing": {"categorical_encoding": "ordinal", "handle_unknown": "ignore"}})),
                &[],
            )
            .unwrap();
            // The imputed value is the statistic of the training rows that had a value.
            let imputed = pre.columns[0].impute.as_ref().unwrap().as_f64().unwrap() as f32;
            let observed: Vec<f32> = sp
                .train
                .iter()
                .filter(|&&r| r >= 2)
                .map(|&r| (r % 7) as f32)
                .collect();
            let expect = match s {
                "mean" => observed.iter().sum::<f32>() / observed.len() as f32,
                "median" => {
                    let mut o = observed.clone();
                    o.sort_by(f32::total_cmp);
                    let n = o.len();
                    if n % 2 == 1 {
                        o[n / 2]
                    } else {
                        (o[n / 2 - 1] + o[n / 2]) / 2.0
                    }
                }
                _ => {
                    let mut best = (0usize, 0f32);
                    for v in 0..7 {
                        let k = observed.iter().filter(|&&o| o == v as f32).count();
                        if k > best.0 {
                            best = (k, v as f32);
                        }
                    }
                    best.1
                }
            };
            assert!(
                (imputed - expect).abs() < 1e-5,
                "{s}: {imputed} vs {expect}"
            );
            assert_eq!(p.x[0], imputed, "{s}: row 0 takes the fitted value");
            assert!(p.x.iter().all(|v| !v.is_nan()), "{s}: nothing left missing");
            assert_eq!(
                pre.columns[1].impute.as_ref().unwrap(),
                "red",
                "{s}: text takes the most frequent"
            );
        }
    }

    #[test]
    fn onehot_and_ordinal_learn_categories_on_the_training_split_and_unseen_ones_are_named() {
        let mut csv = String::from("c,y\n");
        for i in 0..20 {
            csv.push_str(&format!("{},{}\n", ["red", "blue", "green"][i % 3], i % 2));
        }
        let t = table(&csv);
        let (p, _, pre) = prepare(
            &t,
            &cfg(serde_json::json!({"preprocessing": {"categorical_encoding": "onehot"}})),
            &[],
        )
        .unwrap();
        assert_eq!(p.features, vec!["c_blue", "c_green", "c_red"]);
        assert_eq!(&p.x[..3], &[0.0, 0.0, 1.0], "row 0 is red");
        assert_eq!(pre.columns[0].encoding, Some("onehot"));
        let (p, _, _) = prepare(
            &t,
            &cfg(serde_json::json!({"preprocessing": {"categorical_encoding": "ordinal"}})),
            &[],
        )
        .unwrap();
        assert_eq!(p.features, vec!["c_ord"]);
        assert_eq!(&p.x[..3], &[2.0, 0.0, 1.0]);
        // A category only in held-out rows: find a seed that puts the one "violet" row there.
        csv.push_str("violet,1\n");
        let t = table(&csv);
        let e = (0..50)
            .find_map(|seed| {
                let mut c =
                    cfg(serde_json::json!({"preprocessing": {"categorical_encoding": "onehot"}}));
                c.dataset_config.splits.random_state = seed;
                prepare(&t, &c, &[]).err()
            })
            .expect("some seed holds violet out")
            .to_string();
        assert!(e.contains("column `c`") && !e.contains("violet"), "{e}");
    }
}

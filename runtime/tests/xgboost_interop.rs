//! Train_XGB's trees are XGBoost's: the `xgboost` package loads ccr's `model.xgb.json` and
//! predicts the margins ccr predicts (within 1e-4), and xgboost trained itself on the same
//! rows with the same parameters (`tree_method="hist"`) reaches no better a held-out loss than
//! ccr's plus 5% (binary:logistic with missing values, multi:softprob over three classes,
//! reg:squarederror; the trees differ where the two pick different quantile cuts). tests/py/xgboost_check.py runs the xgboost side.

mod common;

use ccr_runtime::learn::{Prepared, Split, xgb};
use ccr_runtime::pipeline::TrainConfig;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const N: usize = 3000;
const D: usize = 5;

fn rows(x: &[f32], idx: &[usize]) -> Vec<Vec<Option<f32>>> {
    idx.iter()
        .map(|&i| {
            x[i * D..(i + 1) * D]
                .iter()
                .map(|v| (!v.is_nan()).then_some(*v))
                .collect()
        })
        .collect()
}

/// Margins per row from the outputs layout (binary: `[−m/2, m/2]`).
fn margins(out: &[f32], objective: &str, k: usize) -> Vec<Vec<f64>> {
    out.chunks(k)
        .map(|o| match objective {
            "binary:logistic" => vec![f64::from(o[1] - o[0])],
            _ => o.iter().map(|&v| f64::from(v)).collect(),
        })
        .collect()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// Held-out loss of margins: log loss (binary, multi) or mean squared error.
fn loss(m: &[Vec<f64>], y: &[f32], objective: &str) -> f64 {
    let n = y.len() as f64;
    m.iter()
        .zip(y)
        .map(|(m, &y)| match objective {
            "binary:logistic" => {
                let p = 1.0 / (1.0 + (-m[0]).exp());
                -(if y == 1.0 { p } else { 1.0 - p }).ln()
            }
            "multi:softprob" => {
                let z: f64 = m.iter().map(|v| v.exp()).sum();
                -(m[y as usize].exp() / z).ln()
            }
            _ => (m[0] - f64::from(y)).powi(2),
        })
        .sum::<f64>()
        / n
}

#[test]
fn xgboost_loads_ccr_trees_and_predicts_the_same_margins() {
    if !common::python_with("xgboost, numpy") {
        return;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut x: Vec<f32> = (0..N * D).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
    // Feature 3 takes 7 values (a bin each), feature 1 is missing in 1 row of 12.
    for i in 0..N {
        x[i * D + 3] = x[i * D + 3].round();
        if i % 12 == 0 {
            x[i * D + 1] = f32::NAN;
        }
    }
    let signal = |r: &[f32]| r[0] * r[0] - r[1].max(-1.0) + 0.5 * r[3] - (r[2] * r[4]).sin();
    let scores: Vec<f32> = x
        .chunks(D)
        .map(|r| signal(r) + rng.gen_range(-0.7f32..0.7))
        .collect();
    let binary: Vec<f32> = scores
        .iter()
        .map(|&s| f32::from(u8::from(s > 0.6)))
        .collect();
    let three: Vec<f32> = scores
        .iter()
        .map(|&s| {
            if s < 0.0 {
                0.0
            } else if s < 1.5 {
                1.0
            } else {
                2.0
            }
        })
        .collect();
    let sp = Split {
        train: (0..N * 4 / 5).collect(),
        val: Vec::new(),
        test: (N * 4 / 5..N).collect(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for (objective, y, classes, task) in [
        ("binary:logistic", &binary, 2, "classification"),
        ("multi:softprob", &three, 3, "classification"),
        ("reg:squarederror", &scores, 0, "regression"),
    ] {
        let p = Prepared {
            features: (0..D).map(|j| format!("f{j}")).collect(),
            x: x.clone(),
            y: y.clone(),
            classes: (0..classes).map(|c| c.to_string()).collect(),
            ids: Vec::new(),
            sample_shape: vec![D],
        };
        let cfg: TrainConfig = serde_json::from_value(json!({
            "dataset_config": {"target_variable": "y"},
            "model_config": {"name": "XGBoost", "n_estimators": 40, "max_depth": 4,
                "learning_rate": 0.3, "l2_regularization": 1.0, "min_child_weight": 1.0,
                "objective": objective},
            "task_type": task
        }))
        .unwrap();
        let m = xgb::train(&p, &sp, &cfg).unwrap();
        let path = dir.path().join(format!("{objective}.json"));
        std::fs::write(&path, m.to_json(&p)).unwrap();
        let mut params = json!({"objective": objective, "max_depth": 4, "eta": 0.3,
            "lambda": 1.0, "min_child_weight": 1.0});
        if classes > 2 {
            params["num_class"] = json!(classes);
        }
        cases.push(json!({"model": path, "params": params, "rounds": 40,
            "x": rows(&x, &sp.train), "y": sp.train.iter().map(|&i| y[i]).collect::<Vec<_>>(),
            "x_test": rows(&x, &sp.test)}));
        let k = m.outputs;
        ours.push((objective, margins(&m.predict(&p, &sp.test), objective, k)));
    }
    let got = common::python_json(
        "python3",
        "tests/py/xgboost_check.py",
        &[],
        &json!({"cases": cases}),
    );
    let labels = |y: &[f32]| sp.test.iter().map(|&i| y[i]).collect::<Vec<_>>();
    for ((objective, mine), (theirs, y)) in ours.iter().zip(
        got.as_array()
            .unwrap()
            .iter()
            .zip([&binary, &three, &scores]),
    ) {
        let loaded = matrix(&theirs["loaded"]);
        let worst = mine
            .iter()
            .flatten()
            .zip(loaded.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-4,
            "{objective}: xgboost's margins on ccr's model differ by {worst}"
        );
        let y = labels(y);
        let (l_ccr, l_xgb) = (
            loss(mine, &y, objective),
            loss(&matrix(&theirs["trained"]), &y, objective),
        );
        println!(
            "{objective}: held-out loss ccr {l_ccr:.4}, xgboost {l_xgb:.4}; loaded margins within {worst:.1e}"
        );
        assert!(
            l_ccr <= 1.05 * l_xgb,
            "{objective}: held-out loss ccr {l_ccr} vs xgboost {l_xgb}"
        );
    }
}

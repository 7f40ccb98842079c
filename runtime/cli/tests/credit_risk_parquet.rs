//! A scenario in the shape of DEPA-Training's credit-risk (iSPIRT/depa-training,
//! `scenarios/credit-risk/config/pipeline_config.json`): four providers, five parquet datasets
//! keyed by `SK_ID_CURR`, DEPA's multi-way `LEFT JOIN … ON` query with aliases, string
//! categorical columns, missing values (applicants absent from a provider's table, and nulls),
//! `Train_XGB` with DP at epsilon 4 — run end to end with `ccr scenario run` on synthetic data
//! written here with the `parquet` crate. The DP model must beat the majority-class baseline
//! (held-out ROC AUC 0.5) and spend at most the contract's epsilon.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use common::*;
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}
fn i64s(v: Vec<i64>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
fn texts(v: Vec<&str>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// `n` applicants: their default risk rises with the credit-to-income ratio, late payments, the
/// bureau's past-due rate and a revolving contract.
fn write_data(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut r = Rng(0x5eed_cafe_f00d_1234);
    let ids: Vec<i64> = (0..n as i64).map(|i| 100_000 + i).collect();
    let (mut target, mut income, mut cti, mut contract, mut gender, mut children) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut late, mut diff, mut past_due, mut bureau_n, mut active, mut dpd) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let c = 1.0 + 3.0 * r.next();
        let l = r.next().powi(2);
        let pd = r.next() * 0.5;
        let revolving = r.next() < 0.3;
        let z = -2.5
            + 0.9 * (c - 2.5)
            + 2.5 * l
            + 3.0 * pd
            + if revolving { 0.8 } else { 0.0 }
            + 0.5 * r.normal();
        target.push(i64::from(z > 0.0));
        income.push(Some(20_000.0 + 40_000.0 * r.next()));
        cti.push(Some(c));
        contract.push(if revolving {
            "Revolving loans"
        } else {
            "Cash loans"
        });
        gender.push(["F", "M", "F", "M", "XNA"][(r.next() * 5.0) as usize % 5]);
        children.push((r.next() * 4.0) as i64);
        late.push(l);
        diff.push(100.0 * l + 20.0 * r.normal());
        past_due.push(pd);
        bureau_n.push((r.next() * 10.0) as i64);
        active.push(["Active", "Closed", "Closed", "Sold"][(r.next() * 4.0) as usize % 4]);
        dpd.push((30.0 * l * r.next()) as i64);
    }
    // One income in 20 is missing (a null in the provider's file).
    for (i, v) in income.iter_mut().enumerate() {
        if i % 20 == 7 {
            *v = None;
        }
    }
    write_parquet(
        &dir.join("bank_a_app_learn.parquet"),
        vec![
            ("SK_ID_CURR", i64s(ids.clone())),
            ("TARGET", i64s(target)),
            ("INCOME_PER_PERSON", f64s(income)),
            ("CREDIT_TO_INCOME", f64s(cti)),
            ("NAME_CONTRACT_TYPE", texts(contract)),
            ("CODE_GENDER", texts(gender)),
            ("CNT_CHILDREN", i64s(children)),
        ],
    );
    // Each other table holds most applicants, not all: the LEFT JOINs leave missing values.
    let some = |k: usize| -> Vec<usize> { (0..n).filter(|i| i % k != 3).collect() };
    let rows = some(10);
    write_parquet(
        &dir.join("bank_a_inst_agg.parquet"),
        vec![
            ("SK_ID_CURR", i64s(rows.iter().map(|&i| ids[i]).collect())),
            (
                "PAYMENT_DIFF_mean",
                f64s(rows.iter().map(|&i| Some(diff[i])).collect()),
            ),
            (
                "LATE_PAYMENT_mean",
                f64s(rows.iter().map(|&i| Some(late[i])).collect()),
            ),
        ],
    );
    let rows = some(12);
    write_parquet(
        &dir.join("bank_a_prev_agg.parquet"),
        vec![
            ("SK_ID_CURR", i64s(rows.iter().map(|&i| ids[i]).collect())),
            (
                "AMT_APPLICATION_count",
                i64s(rows.iter().map(|&i| (i % 7) as i64).collect()),
            ),
            (
                "AMT_APPLICATION_mean",
                f64s(
                    rows.iter()
                        .map(|&i| Some(1000.0 * (i % 13) as f64))
                        .collect(),
                ),
            ),
        ],
    );
    let rows = some(8);
    write_parquet(
        &dir.join("bureau_agg.parquet"),
        vec![
            ("SK_ID_CURR", i64s(rows.iter().map(|&i| ids[i]).collect())),
            (
                "BUREAU_COUNT_sum",
                i64s(rows.iter().map(|&i| bureau_n[i]).collect()),
            ),
            (
                "STATUS_PAST_DUE_RATE",
                f64s(rows.iter().map(|&i| Some(past_due[i])).collect()),
            ),
            (
                "CREDIT_ACTIVE",
                texts(rows.iter().map(|&i| active[i]).collect()),
            ),
        ],
    );
    let rows = some(9);
    write_parquet(
        &dir.join("pos_fintech_agg.parquet"),
        vec![
            ("SK_ID_CURR", i64s(rows.iter().map(|&i| ids[i]).collect())),
            ("SK_DPD_max", i64s(rows.iter().map(|&i| dpd[i]).collect())),
            (
                "MONTHS_BALANCE_count",
                i64s(rows.iter().map(|&i| 12 + (i % 24) as i64).collect()),
            ),
        ],
    );
}

fn scenario(dir: &Path) {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let ds = |tdp: &str, names: &[(&str, &str)]| {
        json!({"name": tdp, "datasets": names.iter().map(|(name, id)| json!({
            "name": name, "id": id, "privacy": true, "epsilon": 4.0, "delta": 0.00001
        })).collect::<Vec<_>>()})
    };
    let input = json!({
        "scenario_name": "credit-risk",
        "tdps": [
            ds("bank_a", &[("credit_applications", "19517ba8-bab8-11ed-afa1-0242ac120002"),
                           ("previous_applications", "216d5cc6-bab8-11ed-afa1-0242ac120002"),
                           ("payment_installments", "2830a144-bab8-11ed-afa1-0242ac120002")]),
            ds("bureau", &[("bureau_records", "3187712c-bab8-11ed-afa1-0242ac120002")]),
            ds("fintech", &[("pos_cash_balance", "40e82c74-bab8-11ed-afa1-0242ac120002")]),
        ],
        "training_framework": "Train_XGB",
        "join_type": "SparkJoin",
        "model_format": "XGBoost"
    });
    std::fs::write(
        dir.join("scenario.json"),
        serde_json::to_vec_pretty(&input).unwrap(),
    )
    .unwrap();
    let d = |id: &str, provider: &str, name: &str, file: &str, cols: &[&str]| {
        json!({"id": id, "provider": provider, "name": name, "file": file,
               "select_variables": cols, "mount_path": format!("/mnt/remote/{provider}/")})
    };
    // DEPA's credit-risk pipeline (its model_config without a `name`, as DEPA writes it), with
    // CREDIT_ACTIVE added and the categorical columns kept.
    let pipeline = json!({"pipeline": [
        {"name": "SparkJoin", "config": {
            "datasets": [
                d("19517ba8-bab8-11ed-afa1-0242ac120002", "bank_a", "credit_applications", "bank_a_app_learn.parquet",
                  &["SK_ID_CURR", "TARGET", "INCOME_PER_PERSON", "CREDIT_TO_INCOME", "NAME_CONTRACT_TYPE", "CODE_GENDER", "CNT_CHILDREN"]),
                d("216d5cc6-bab8-11ed-afa1-0242ac120002", "bank_a", "previous_applications", "bank_a_prev_agg.parquet",
                  &["SK_ID_CURR", "AMT_APPLICATION_count", "AMT_APPLICATION_mean"]),
                d("2830a144-bab8-11ed-afa1-0242ac120002", "bank_a", "payment_installments", "bank_a_inst_agg.parquet",
                  &["SK_ID_CURR", "PAYMENT_DIFF_mean", "LATE_PAYMENT_mean"]),
                d("3187712c-bab8-11ed-afa1-0242ac120002", "bureau", "bureau_records", "bureau_agg.parquet",
                  &["SK_ID_CURR", "BUREAU_COUNT_sum", "STATUS_PAST_DUE_RATE", "CREDIT_ACTIVE"]),
                d("40e82c74-bab8-11ed-afa1-0242ac120002", "fintech", "pos_cash_balance", "pos_fintech_agg.parquet",
                  &["SK_ID_CURR", "SK_DPD_max", "MONTHS_BALANCE_count"]),
            ],
            "joined_dataset": {
                "joined_dataset": "/tmp/credit_risk_joined.parquet",
                "joining_query": "SELECT * FROM credit_applications a LEFT JOIN previous_applications p ON a.SK_ID_CURR = p.SK_ID_CURR LEFT JOIN payment_installments i ON a.SK_ID_CURR = i.SK_ID_CURR LEFT JOIN bureau_records b ON a.SK_ID_CURR = b.SK_ID_CURR LEFT JOIN pos_cash_balance pos ON a.SK_ID_CURR = pos.SK_ID_CURR",
                "joining_key": "SK_ID_CURR",
                "drop_columns": [],
                "identifiers": ["SK_ID_CURR"]
            }
        }},
        {"name": "Train_XGB", "config": {
            "paths": {"input_dataset_path": "/tmp/credit_risk_joined.parquet", "trained_model_output_path": "/mnt/remote/output"},
            "is_private": true,
            "privacy_params": {"epsilon": 4.0, "delta": 0.00001},
            "model_config": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.3,
                             "l2_regularization": 1.0, "objective": "binary:logistic", "eval_metric": "auc"},
            "dataset_config": {"type": "tabular", "target_variable": "TARGET", "missing_strategy": "median",
                               "preprocessing": {"categorical_encoding": "onehot"},
                               "splits": {"train": 0.8, "val": 0.1, "test": 0.1, "random_state": 42, "stratify": true},
                               "data_type": "numpy"},
            "metrics": ["accuracy", "roc_auc", "confusion_matrix", "classification_report"],
            "task_type": "classification"
        }}
    ]});
    std::fs::write(
        dir.join("config/pipeline_config.json"),
        serde_json::to_vec_pretty(&pipeline).unwrap(),
    )
    .unwrap();
}

/// The five datasets' names and files.
const FILES: [(&str, &str); 5] = [
    ("credit_applications", "bank_a_app_learn.parquet"),
    ("previous_applications", "bank_a_prev_agg.parquet"),
    ("payment_installments", "bank_a_inst_agg.parquet"),
    ("bureau_records", "bureau_agg.parquet"),
    ("pos_cash_balance", "pos_fintech_agg.parquet"),
];

/// Writes the scenario folder (DEPA's scenario input through `ccr scenario new`, then the
/// pipeline above) and runs it on the files in `data`.
fn run_scenario(root: &Path, data: &Path, work: &Path) -> std::process::Output {
    let dir = root.join("credit-risk");
    scenario(&dir);
    let pipeline = std::fs::read(dir.join("config/pipeline_config.json")).unwrap();
    let out = Command::new(ccr())
        .args(["scenario", "new"])
        .arg(dir.join("scenario.json"))
        .arg("--out")
        .arg(&dir)
        .arg("--force")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("config/pipeline_config.json"), pipeline).unwrap();
    let mut cmd = Command::new(ccr());
    cmd.args(["scenario", "run"]).arg(&dir);
    for (name, file) in FILES {
        cmd.arg("--data")
            .arg(format!("{name}={}", data.join(file).display()));
    }
    cmd.arg("--work")
        .arg(work)
        .arg("--init")
        .arg(ccr_init())
        .output()
        .unwrap()
}

#[test]
fn credit_risk_parquet_multi_way_left_join_trains_dp_xgboost_at_epsilon_4() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_data(&data, 8000);
    let work = tmp.path().join("work");
    let out = run_scenario(tmp.path(), &data, &work);
    let log = std::fs::read_to_string(work.join("ccr-init.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{}\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let read = |f: &str| -> Value {
        serde_json::from_slice(&std::fs::read(work.join("unsealed").join(f)).unwrap()).unwrap()
    };
    let (m, run) = (read("metrics.json"), read("run.json"));
    // Every applicant is in the joined table (LEFT JOINs); the missing values were imputed.
    assert_eq!(m["rows"]["total"], json!(8000), "{m}");
    let pre = read("preprocessing.json");
    let imputed: Vec<&str> = pre["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["impute"].is_number())
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert!(
        imputed.contains(&"INCOME_PER_PERSON") && imputed.contains(&"LATE_PAYMENT_mean"),
        "{pre}"
    );
    let features: Vec<&str> = pre["feature_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "CODE_GENDER_XNA",
        "NAME_CONTRACT_TYPE_Revolving loans",
        "CREDIT_ACTIVE_Sold",
    ] {
        assert!(features.contains(&f), "{f} not in {features:?}");
    }
    assert!(
        !features.iter().any(|f| f.starts_with("SK_ID_CURR")),
        "{features:?}"
    );
    // DP: spent within the contract's 4.0, charged to every dataset, no non-DP twin.
    let dp = &run["dp_trees"];
    let eps = dp["epsilon"].as_f64().unwrap_or_else(|| panic!("{run}"));
    assert!(eps > 3.5 && eps <= 4.0, "epsilon spent {eps}");
    for (id, p) in run["privacy"].as_object().unwrap() {
        assert_eq!(p["epsilon_spent"].as_f64(), Some(eps), "{id}");
    }
    let auc = m["test"]["roc_auc"].as_f64().unwrap();
    assert!(
        auc > 0.6,
        "held-out ROC AUC {auc} (majority baseline 0.5): {m}"
    );
    assert_eq!(m["eval"]["metric"], json!("auc"));
    let model = read("model.xgb.json");
    assert_eq!(model["dp"]["trees"].as_array().unwrap().len(), 60);
    assert!(
        model.get("boosters").is_none(),
        "no non-DP booster is released"
    );
    println!(
        "credit-risk (parquet, 5 datasets, DP-TR Newton): epsilon {eps:.3}, noise multiplier {:.2}, held-out AUC {auc:.4} (n {}), val {} {:.4}",
        dp["noise_multiplier"].as_f64().unwrap_or(0.0),
        m["test"]["n"],
        m["eval"]["metric"],
        m["eval"]["value"].as_f64().unwrap_or(0.0)
    );
}

/// A bad-input case: its name, what it does to the files, what the error must say.
type Case<'a> = (&'a str, &'a dyn Fn(&Path), &'a [&'a str]);

/// Bad input: each run fails with an error naming the file or datasets and column, and no
/// output is written.
#[test]
fn bad_parquet_a_key_type_mismatch_and_a_missing_key_are_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    write_data(&good, 400);
    let cases: [Case; 3] = [
        (
            "truncated",
            &|d: &Path| {
                let f = d.join("bureau_agg.parquet");
                let bytes = std::fs::read(&f).unwrap();
                std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
            },
            &["bureau_agg.parquet", "parquet"],
        ),
        (
            "key as text",
            &|d: &Path| {
                write_parquet(
                    &d.join("pos_fintech_agg.parquet"),
                    vec![
                        ("SK_ID_CURR", texts(vec!["100000", "100001"])),
                        ("SK_DPD_max", i64s(vec![1, 2])),
                        ("MONTHS_BALANCE_count", i64s(vec![3, 4])),
                    ],
                );
            },
            &[
                "column `SK_ID_CURR`",
                "`credit_applications`",
                "`pos_cash_balance`",
            ],
        ),
        (
            "no key",
            &|d: &Path| {
                write_parquet(
                    &d.join("pos_fintech_agg.parquet"),
                    vec![
                        ("ID", i64s(vec![100000, 100001])),
                        ("SK_DPD_max", i64s(vec![1, 2])),
                        ("MONTHS_BALANCE_count", i64s(vec![3, 4])),
                    ],
                );
            },
            &["joining_key", "`SK_ID_CURR`", "dataset `pos_cash_balance`"],
        ),
    ];
    for (name, damage, needles) in cases {
        let root = tmp.path().join(name.replace(' ', "-"));
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for (_, f) in FILES {
            std::fs::copy(good.join(f), data.join(f)).unwrap();
        }
        damage(&data);
        let work = root.join("work");
        let out = run_scenario(&root, &data, &work);
        let log = std::fs::read_to_string(work.join("ccr-init.log")).unwrap_or_default();
        assert!(!out.status.success(), "{name}: the run succeeded");
        for n in needles {
            assert!(log.contains(n), "{name}: `{n}` not in the log:\n{log}");
        }
        assert!(
            !work.join("unsealed").exists() && !work.join("output").exists(),
            "{name}: output written"
        );
        println!(
            "{name}: {}",
            log.lines()
                .rev()
                .find(|l| l.contains("error"))
                .unwrap_or("")
        );
    }
}

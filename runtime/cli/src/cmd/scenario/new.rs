//! `ccr scenario new`: a scenario folder from DEPA's build-your-own-scenario input.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::io::{read_json, write_atomic};

/// One dataset of the scenario input.
struct Ds {
    tdp: String,
    name: String,
    id: String,
    private: bool,
    epsilon: Option<f64>,
    delta: Option<f64>,
}

fn datasets(s: &Value) -> Result<Vec<Ds>> {
    let mut out = Vec::new();
    for (i, t) in s["tdps"]
        .as_array()
        .context("`tdps`: a list is required")?
        .iter()
        .enumerate()
    {
        let tdp = t["name"]
            .as_str()
            .with_context(|| format!("`tdps[{i}].name` is required"))?;
        for (j, d) in t["datasets"].as_array().into_iter().flatten().enumerate() {
            let at = format!("tdps[{i}].datasets[{j}]");
            let private = d["privacy"].as_bool().unwrap_or(false);
            let num = |k: &str| {
                d[k].as_f64()
                    .or_else(|| d[k].as_str().and_then(|s| s.parse().ok()))
            };
            if private && (num("epsilon").is_none() || num("delta").is_none()) {
                bail!("`{at}`: privacy true needs epsilon and delta");
            }
            out.push(Ds {
                tdp: tdp.to_string(),
                name: d["name"]
                    .as_str()
                    .with_context(|| format!("`{at}.name` is required"))?
                    .to_string(),
                id: d["id"]
                    .as_str()
                    .with_context(|| format!("`{at}.id` is required"))?
                    .to_string(),
                private,
                epsilon: num("epsilon"),
                delta: num("delta"),
            });
        }
    }
    if out.is_empty() {
        bail!("`tdps`: no datasets");
    }
    Ok(out)
}

/// The SQL table name of a dataset (its name with non-identifier characters as `_`).
fn table(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        format!("t_{t}")
    } else {
        t
    }
}

fn pipeline(s: &Value, ds: &[Ds]) -> Result<Value> {
    let framework = s["training_framework"].as_str().unwrap_or("Train_DL");
    if !["Train_DL", "Train_ML", "Train_XGB"].contains(&framework) {
        bail!("`training_framework` {framework}: Train_DL, Train_ML or Train_XGB");
    }
    let name = s["scenario_name"].as_str().unwrap_or("scenario");
    let join = s["join_type"].as_str();
    let joined = format!("/tmp/{name}_joined.csv");
    let mut steps = Vec::new();
    if let Some(j) = join {
        if !["SparkJoin", "DirectoryJoin"].contains(&j) {
            bail!("`join_type` {j}: SparkJoin or DirectoryJoin");
        }
        let list: Vec<Value> = ds
            .iter()
            .map(|d| json!({"id": d.id, "provider": d.tdp, "name": table(&d.name), "file": format!("{}.csv", d.name), "mount_path": format!("/mnt/remote/{}/", d.tdp)}))
            .collect();
        let tables: Vec<String> = ds.iter().map(|d| table(&d.name)).collect();
        let query = match tables.split_first() {
            Some((first, rest)) => rest.iter().fold(format!("SELECT * FROM {first}"), |q, t| {
                format!("{q} JOIN {t} ON {t}.id = {first}.id")
            }),
            None => String::new(),
        };
        let mut cfg = json!({"datasets": list, "joined_dataset": {"joined_dataset": joined, "joining_key": "id", "identifiers": ["id"], "drop_columns": []}});
        if j == "SparkJoin" {
            cfg["joined_dataset"]["joining_query"] = json!(query);
        }
        steps.push(json!({"name": j, "config": cfg}));
    } else if ds.len() != 1 {
        bail!("`join_type` is required with more than one dataset");
    }
    let private = ds.iter().any(|d| d.private);
    let model_format = s["model_format"]
        .as_str()
        .unwrap_or("ONNX")
        .to_ascii_lowercase();
    let input = if join.is_some() {
        joined
    } else {
        format!("/mnt/remote/{}/{}.csv", ds[0].tdp, ds[0].name)
    };
    let mut train = json!({
        "paths": {"input_dataset_path": input, "trained_model_output_path": "/mnt/remote/output"},
        "is_private": private,
        "device": "cpu",
        "batch_size": 32,
        "optimizer": {"name": "Adam", "params": {"lr": 0.001}},
        "total_epochs": 5,
        "dataset_config": {"type": "tabular", "target_variable": "label", "preprocessing": {"scaler": "standard"}, "missing_strategy": "drop", "splits": {"train": 0.8, "val": 0.0, "test": 0.2, "random_state": 42, "stratify": true}},
        "metrics": ["accuracy", {"name": "f1_score", "params": {"average": "macro"}}],
        "task_type": "classification",
    });
    match (framework, model_format.as_str()) {
        ("Train_XGB", _) => {
            train["model_config"] = json!({"name": "XGBoost", "n_estimators": 50, "max_depth": 4});
            train.as_object_mut().map(|m| m.remove("optimizer"));
        }
        ("Train_ML", _) => train["model_config"] = json!({"name": "LogisticRegression"}),
        (_, "onnx") => {
            train["model_type"] = json!("onnx");
            train["paths"]["base_model_path"] = json!("/mnt/remote/model/model.onnx");
            train["loss_config"] =
                json!({"class": "torch.nn.CrossEntropyLoss", "params": {"reduction": "mean"}});
        }
        (_, "safetensors") => {
            train["model_type"] = json!("safetensors");
            train["paths"]["base_model_path"] = json!("/mnt/remote/model/model.safetensors");
            train["model_config"] = json!({"layers": {"fc1": {"class": "nn.Linear", "params": {"in_features": 10, "out_features": 32}}, "fc2": {"class": "nn.Linear", "params": {"in_features": 32, "out_features": 2}}},
                "input": ["x"], "forward": [{"ops": ["fc1", "F.relu", "fc2"], "input": ["x"], "output": "y"}], "output": ["y"]});
            train["loss_config"] =
                json!({"class": "nn.CrossEntropyLoss", "params": {"reduction": "mean"}});
        }
        (_, other) => bail!("`model_format` {other}: ONNX or Safetensors"),
    }
    if private {
        let eps = ds
            .iter()
            .filter_map(|d| d.epsilon)
            .fold(f64::INFINITY, f64::min);
        let delta = ds
            .iter()
            .filter_map(|d| d.delta)
            .fold(f64::INFINITY, f64::min);
        train["privacy_params"] = if framework == "Train_XGB" {
            // DP trees bound each row's gradient by the objective: no clipping norm.
            json!({"epsilon": eps, "delta": delta})
        } else {
            json!({"epsilon": eps, "delta": delta, "max_grad_norm": 1.0})
        };
    }
    steps.push(json!({"name": framework, "config": train}));
    Ok(json!({"pipeline": steps}))
}

fn contract(s: &Value, ds: &[Ds]) -> Value {
    let now = chrono::Utc::now();
    let mut tdps: Vec<&str> = ds.iter().map(|d| d.tdp.as_str()).collect();
    tdps.dedup();
    let privacy: Vec<Value> = ds
        .iter()
        .filter(|d| d.private)
        .map(|d| json!({"dataset": d.id, "epsilon_threshold": d.epsilon, "delta": d.delta}))
        .collect();
    json!({
        "id": format!("{}-{}", s["scenario_name"].as_str().unwrap_or("scenario"), now.timestamp()),
        "schemaVersion": "0.1",
        "startTime": now.to_rfc3339(),
        "expiryTime": (now + chrono::Duration::days(365)).to_rfc3339(),
        "tdc": "",
        "tdps": tdps,
        "datasets": ds.iter().map(|d| json!({"id": d.id, "owner": d.tdp, "name": table(&d.name), "url": "", "provider": d.tdp,
            "key": {"type": "ccr", "properties": {"kid": format!("ccr/dataset/{}", d.id), "authority": {"endpoint": "local"}, "endpoint": ""}}})).collect::<Vec<_>>(),
        "purpose": "TRAINING",
        "constraints": [{"privacy": privacy}],
        "terms": {"payment": {}, "revocation": {}},
    })
}

fn readme(name: &str, ds: &[Ds], base: bool) -> String {
    let mut r = format!(
        "# Scenario {name}\n\nMade by `ccr scenario new`. Put each provider's data where `data.json` points \
         (or pass `--data NAME=PATH`), adjust `config/pipeline_config.json` (target column, join query, \
         model), then run it end to end on this machine (sim platform, NOT confidential):\n\n    ccr scenario run {name}{}\n\n\
         What each role runs in a deployment (`ccr scenario run` prints these as it runs them):\n\n\
         - broker operator: `ccr sim init` (local only) and `ccr keybroker serve --store DIR`\n\
         - every party: `ccr contract keygen --out KEY`, `ccr contract set-party`, then `ccr contract sign` once the \
           contract is complete\n\
         - data consumer: `ccr contract set-pipeline`, `ccr policy derive`, `ccr contract set-policy`{}, \
           `ccr keys generate` and `ccr keys put --kid ccr/output/<id>` for the output key, and after the run \
           `ccr model unseal`\n",
        if base { " --base-model MODEL" } else { "" },
        if base {
            ", `ccr contract set-base-model`"
        } else {
            ""
        },
    );
    for d in ds {
        r.push_str(&format!(
            "- data provider `{}` (dataset `{}`): `ccr keys generate DEK`, `ccr dataset seal --id {} --kid ccr/dataset/{} --key DEK DATA IMAGE`, `ccr keys put --kid ccr/dataset/{} --key DEK --contract contract.json`\n",
            d.tdp, d.name, d.id, d.id, d.id
        ));
    }
    r.push_str("- the CCR: `ccr-init --contract contract.json --pipeline pipeline_config.json --datasets IMAGES --out OUTPUT`\n");
    r
}

/// Writes the scenario folder.
///
/// # Errors
/// The input's missing or wrong fields (named), or a folder that exists without `--force`.
pub(crate) fn new(input: &Path, out: Option<PathBuf>, force: bool) -> Result<()> {
    let s = read_json(input)?;
    let name = s["scenario_name"]
        .as_str()
        .context("`scenario_name` is required")?;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("`scenario_name` `{name}`: a folder name is required");
    }
    let ds = datasets(&s)?;
    let dir = out.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && !force {
        bail!(
            "{}: exists (give --force to overwrite its files)",
            dir.display()
        );
    }
    let pipeline = pipeline(&s, &ds)?;
    let base = pipeline["pipeline"]
        .as_array()
        .and_then(|p| p.last())
        .is_some_and(|t| t["config"]["model_type"].is_string());
    for sub in ["config", "contract"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let pretty = |v: &Value| {
        serde_json::to_vec_pretty(v).map(|mut b| {
            b.push(b'\n');
            b
        })
    };
    write_atomic(&dir.join("scenario.json"), &pretty(&s)?, false)?;
    write_atomic(
        &dir.join("config").join("pipeline_config.json"),
        &pretty(&pipeline)?,
        false,
    )?;
    write_atomic(
        &dir.join("contract").join("contract.json"),
        &pretty(&contract(&s, &ds))?,
        false,
    )?;
    let data: serde_json::Map<String, Value> = ds
        .iter()
        .map(|d| (d.name.clone(), json!(format!("data/{}/", d.name))))
        .collect();
    write_atomic(
        &dir.join("data.json"),
        &pretty(&Value::Object(data))?,
        false,
    )?;
    for d in &ds {
        std::fs::create_dir_all(dir.join("data").join(&d.name))?;
    }
    write_atomic(
        &dir.join("README.md"),
        readme(name, &ds, base).as_bytes(),
        false,
    )?;
    println!(
        "{}: scenario {name} with {} dataset(s); next: put the data in place and `ccr scenario run {}`",
        dir.display(),
        ds.len(),
        dir.display()
    );
    Ok(())
}

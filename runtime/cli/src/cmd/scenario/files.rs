//! A scenario folder's files as DEPA lays them out (`scenario.json`, `config/`, `contract/`),
//! and what ccr adds to them: the pipeline consolidated from DEPA's separate config files, the
//! contract template completed with ccr's fields for a local run.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::io::read_json;

/// A scenario folder's pipeline config: DEPA's layout (`config/`, see [`pipeline`]) or ccr's
/// (`pipeline_config.json` at the top).
///
/// # Errors
/// As [`pipeline`].
pub(crate) fn scenario_pipeline(dir: &Path) -> Result<Value> {
    let top = dir.join("pipeline_config.json");
    if !dir.join("config").exists() && top.exists() {
        return read_json(&top);
    }
    pipeline(&dir.join("config"))
}

/// A scenario folder's contract template: DEPA's `contract/contract.json`, or ccr's
/// `contract.template.json` at the top.
///
/// # Errors
/// Neither file, or one that does not parse.
pub(crate) fn scenario_contract(dir: &Path) -> Result<Value> {
    let depa = dir.join("contract").join("contract.json");
    if depa.exists() {
        return read_json(&depa);
    }
    read_json(&dir.join("contract.template.json"))
}

/// The pipeline config: `config/pipeline_config.json`, else DEPA's separate files merged as its
/// `consolidate_pipeline.sh` merges them: `join_config.json` (the join step, when present),
/// then `train_config.json` with `dataset_config.json`, `model_config.json` and
/// `loss_config.json` under their keys and `eval_config.json`'s fields (`task_type`,
/// `metrics`) in its config.
///
/// # Errors
/// A file that does not parse, or neither a pipeline config nor a train config.
pub(crate) fn pipeline(config: &Path) -> Result<Value> {
    let whole = config.join("pipeline_config.json");
    if whole.exists() {
        return read_json(&whole);
    }
    consolidate(config)
}

/// DEPA's separate config files merged into one pipeline config (see [`pipeline`]).
///
/// # Errors
/// As [`pipeline`].
pub(crate) fn consolidate(config: &Path) -> Result<Value> {
    let read = |name: &str| -> Result<Option<Value>> {
        let p = config.join(name);
        if p.exists() {
            read_json(&p).map(Some)
        } else {
            Ok(None)
        }
    };
    let mut steps = Vec::new();
    if let Some(j) = read("join_config.json")? {
        steps.push(j);
    }
    let Some(mut train) = read("train_config.json")? else {
        bail!(
            "{}: neither pipeline_config.json nor train_config.json",
            config.display()
        );
    };
    let cfg = train
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .context("train_config.json: no `config` object")?;
    for (file, key) in [
        ("dataset_config.json", "dataset_config"),
        ("model_config.json", "model_config"),
        ("loss_config.json", "loss_config"),
    ] {
        if let Some(v) = read(file)? {
            cfg.insert(key.into(), v);
        }
    }
    if let Some(Value::Object(eval)) = read("eval_config.json")? {
        for (k, v) in eval {
            cfg.insert(k, v);
        }
    }
    steps.push(train);
    Ok(json!({ "pipeline": steps }))
}

/// The local broker's key reference for `kid`.
fn ccr_key(kid: &str) -> Value {
    json!({"type": "ccr", "properties": {"kid": kid, "authority": {"endpoint": "local"}, "endpoint": ""}})
}

/// The parties of a contract: `(id, role)`, the data consumer last.
pub(crate) fn parties(contract: &Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = contract["tdps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|p| (p.to_string(), "tdp"))
        .collect();
    if let Some(c) = contract["tdc"].as_str() {
        out.push((c.to_string(), "tdc"));
    }
    out
}

/// DEPA's contract template completed for a local run on the broker of `ccr keybroker serve`:
/// the consumer `tdc` (when empty) and the providers `tdps` (each dataset's `owner`, else
/// `provider`, else the `scenario.json` provider that lists it), `parties`, each dataset's key
/// at the local broker (`ccr/dataset/<id>`), the output and its key (`ccr/output/<output_id>`),
/// the base model's digest, and validity from now when the template's has passed. The
/// pipeline digest, the release policy and the signatures are set by `ccr contract`.
///
/// # Errors
/// A template without `datasets`.
pub(crate) fn local_contract(
    template: &Value,
    scenario: Option<&Value>,
    output_id: &str,
    base_model_sha256: Option<&str>,
) -> Result<Value> {
    let mut c: Map<String, Value> = template
        .as_object()
        .cloned()
        .context("contract.json: not an object")?;
    let owner_in_scenario = |id: &str| -> Option<String> {
        scenario?["tdps"].as_array()?.iter().find_map(|t| {
            t["datasets"]
                .as_array()?
                .iter()
                .any(|d| d["id"].as_str() == Some(id))
                .then(|| t["name"].as_str().map(str::to_string))?
        })
    };
    let datasets = c
        .get_mut("datasets")
        .and_then(Value::as_array_mut)
        .context("contract.json: no datasets[]")?;
    let mut owners: Vec<String> = Vec::new();
    for d in datasets.iter_mut() {
        let id = d["id"]
            .as_str()
            .context("contract.json: a dataset without id")?
            .to_string();
        let owner = [d["owner"].as_str(), d["provider"].as_str()]
            .into_iter()
            .flatten()
            .find(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| owner_in_scenario(&id))
            .unwrap_or_else(|| format!("provider-of-{id}"));
        d["owner"] = json!(owner);
        d["provider"] = json!(owner);
        d["key"] = ccr_key(&format!("ccr/dataset/{id}"));
        if !owners.contains(&owner) {
            owners.push(owner);
        }
    }
    if c.get("tdc")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        c.insert("tdc".into(), json!("tdc"));
    }
    if c.get("tdps")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        c.insert("tdps".into(), json!(owners));
    }
    let now = chrono::Utc::now();
    let expiry = c
        .get("expiryTime")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    if expiry.is_none_or(|e| e < now) {
        eprintln!(
            "note: the template's validity has passed; this local run's contract is valid for 30 days from now"
        );
        c.insert(
            "startTime".into(),
            json!((now - chrono::Duration::hours(1)).to_rfc3339()),
        );
        c.insert(
            "expiryTime".into(),
            json!((now + chrono::Duration::days(30)).to_rfc3339()),
        );
    }
    let mut v = Value::Object(c);
    v["parties"] = Value::Array(
        parties(&v)
            .into_iter()
            .map(|(id, role)| json!({"id": id, "role": role, "publicKey": {}}))
            .collect(),
    );
    v["output"] = json!({"id": output_id, "key": ccr_key(&format!("ccr/output/{output_id}"))});
    v["pipelineDigest"] = json!(format!("sha256:{}", "0".repeat(64)));
    v["releasePolicy"] =
        json!({"version": "1.0.0", "allOf": [{"claim": "platform", "equals": "snp"}]});
    v["signatures"] = json!([]);
    if let Some(d) = base_model_sha256 {
        v["baseModelSha256"] = json!(d);
    }
    Ok(v)
}

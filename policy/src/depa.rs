//! DEPA-Training's own policy (`policy.rego`, package `policy`, rule `allowed`), evaluated with
//! regorus over the input DEPA's runner gives it: `data` is the contract; `input` is
//! `{"pipeline": <the pipeline config's steps>, "azure_filesystems": [...]}`, one file system
//! per contract dataset (its key's `endpoint` and `kid`, mounted read-only at
//! `/mnt/remote/<owner>`), plus the consumer's model file system (read-only, when the pipeline
//! reads a base model) and the output (read-write) — what a CCR that runs the pipeline mounts.

use regorus::Engine;
use serde_json::{Value, json};

use crate::error::PolicyError;

/// The rule DEPA's policy defines.
pub const ALLOWED_RULE: &str = "data.policy.allowed";

/// The runner's input for DEPA's policy (see the module docs).
pub fn runner_input(contract: &Value, pipeline: &Value) -> Value {
    let mut fs: Vec<Value> = contract["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let owner = d["owner"]
                .as_str()
                .filter(|s| !s.is_empty())
                .or_else(|| d["provider"].as_str())
                .unwrap_or_default();
            json!({
                "mount_point": format!("/mnt/remote/{owner}"),
                "read_write": false,
                "key": {"kid": d["key"]["properties"]["kid"], "akv": {"endpoint": d["key"]["properties"]["endpoint"]}},
            })
        })
        .collect();
    let steps = pipeline["pipeline"].as_array().cloned().unwrap_or_default();
    let reads_model = steps.last().is_some_and(|t| {
        t["config"]["model_type"].is_string() || t["config"]["paths"]["base_model_path"].is_string()
    });
    if reads_model {
        fs.push(json!({"mount_point": "/mnt/remote/model", "read_write": false, "key": {"kid": "model", "akv": {"endpoint": ""}}}));
    }
    fs.push(json!({"mount_point": "/mnt/remote/output", "read_write": true, "key": {"kid": "output", "akv": {"endpoint": ""}}}));
    json!({"pipeline": steps, "azure_filesystems": fs})
}

/// Evaluates DEPA's `policy.rego` (unchanged) with the contract as `data` and
/// [`runner_input`] as `input`; an undefined `allowed` is a denial.
///
/// # Errors
/// [`PolicyError::Rego`] when the module does not parse or evaluation fails.
pub fn allowed(rego: &str, contract: &Value, pipeline: &Value) -> Result<bool, PolicyError> {
    let err = |e: String| PolicyError::Rego { reason: e };
    let mut engine = Engine::new();
    engine
        .add_policy("policy.rego".to_string(), rego.to_string())
        .map_err(|e| err(e.to_string()))?;
    engine
        .add_data_json(&contract.to_string())
        .map_err(|e| err(format!("data: {e}")))?;
    engine
        .set_input_json(&runner_input(contract, pipeline).to_string())
        .map_err(|e| err(format!("input: {e}")))?;
    let v = engine
        .eval_rule(ALLOWED_RULE.to_string())
        .map_err(|e| err(e.to_string()))?;
    Ok(v == regorus::Value::from(true))
}
